"""Scratch marts catalogs and synthetic candidates for the publication tests (test_marts_publication, test_gate)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import duckdb
import psycopg
from psycopg import sql

from tidewater.config import Connection, Settings, get_connection
from tidewater.gate import publish, stage
from tidewater.gate.suites import mart_names
from tidewater.lake import Lake
from tidewater.lake.objects import Bucket


@dataclass
class ScratchMarts:
    """A marts catalog of one test: its own catalog database (owned by the catalog writer, readable by the marts
    reader role exactly as stack/config/ducklake-catalogs.sql grants it) and bucket. `settings` and `env` point
    the pipeline's code, in this process or a subprocess, at it through connection ids of its own."""

    settings: Settings
    bucket: Bucket
    database: str
    env: dict[str, str] = field(default_factory=dict)

    def writer(self) -> Lake:
        return publish.open_marts(self.settings)

    def reader(self) -> duckdb.DuckDBPyConnection:
        return publish.open_published(self.settings)


def _uri(conn: Connection, database: str) -> str:
    return (f"postgresql://{quote(conn.login or '', safe='')}:{quote(conn.password or '', safe='')}@"
            f"{conn.host}:{conn.port}/{database}")


@contextmanager
def new_marts(settings: Settings, marts_dir: Path, bucket: str | None = None) -> Iterator[ScratchMarts]:
    """A new, empty marts catalog (and a new bucket unless `bucket` names one the caller owns); removed afterwards.
    Nothing of the deployment's marts is touched."""
    from tests.deployment_state import minio_root_client

    token = uuid.uuid4().hex[:12]
    name = f"test_marts_{token}"
    client = minio_root_client(os.environ)  # creates and drops the test's bucket (the pipeline user may not)
    own_bucket = bucket is None
    bucket = bucket or name.replace("_", "-")
    if own_bucket:
        client.create_bucket(Bucket=bucket)
    writer, reader = get_connection(settings.marts_catalog_conn_id), get_connection(settings.marts_reader_conn_id)
    admin = settings.shop_conninfo(admin=True)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(writer.login)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(name),
                                                                          sql.Identifier(reader.login)))
    with psycopg.connect(psycopg.conninfo.make_conninfo(admin, dbname=name), autocommit=True) as conn:
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(reader.login)))
        conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}")
                     .format(sql.Identifier(writer.login), sql.Identifier(reader.login)))
    writer_id, reader_id = f"test_marts_{token}", f"test_marts_reader_{token}"
    env = {f"AIRFLOW_CONN_{writer_id.upper()}": _uri(writer, name),
           f"AIRFLOW_CONN_{reader_id.upper()}": _uri(reader, name),
           "TIDEWATER_MARTS_CATALOG_CONN_ID": writer_id, "TIDEWATER_MARTS_READER_CONN_ID": reader_id,
           "TIDEWATER_LAKE_BUCKET": bucket, "TIDEWATER_MARTS_DIR": str(marts_dir)}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update({key: value for key, value in env.items() if key.startswith("AIRFLOW_CONN_")})
    scratch = ScratchMarts(replace(settings, marts_catalog_conn_id=writer_id, marts_reader_conn_id=reader_id,
                                   lake_bucket=bucket, marts_dir=str(marts_dir)), Bucket(client, bucket), name, env)
    try:
        yield scratch
    finally:
        for key, value in saved.items():
            if key.startswith("AIRFLOW_CONN_"):
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        if own_bucket:
            scratch.bucket.delete(scratch.bucket.keys(""))
            client.delete_bucket(Bucket=bucket)


def rows_of(number: int, table: str) -> int:
    """Publication `number`'s row count of a mart: different for every publication and every mart."""
    return 3 + 7 * number + mart_names().index(table)


def stage_synthetic(settings: Settings, number: int) -> str:
    """A candidate whose every mart row says which publication it belongs to (`publication_no`); its id."""
    publication_id = f"{stage.new_publication_id()}-{number:03d}"
    path = stage.candidate_path(settings, publication_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        for table in mart_names():
            con.execute(f"create table {table} as select {number} as publication_no, range as row_no, "
                        f"repeat('x', 200) as padding from range({rows_of(number, table)})")
        con.execute(f"create schema gate; create table gate.source_state as select {number} as publication_no")
    return publication_id


def read_all_marts(con: duckdb.DuckDBPyConnection) -> dict:
    """Every mart, the gate figures and the last publications row, read in ONE transaction of a reader."""
    con.execute("begin")
    try:
        seen = {"publication": con.execute(f"select publication_id from {publish.PUBLICATIONS} "
                                           "order by published_at desc limit 1").fetchone()[0]}
        for table in mart_names():
            seen[table] = con.execute(f"select list(distinct publication_no), count(*) from marts.main.{table}"
                                      ).fetchone()
        seen["gate"] = con.execute("select list(distinct publication_no), count(*) from marts.gate.source_state"
                                   ).fetchone()
    finally:
        con.execute("commit")
    return seen


def differences(con: duckdb.DuckDBPyConnection, left: str, right: str) -> int:
    """Rows in one relation and not the other (both ways, duplicates counted)."""
    return con.execute(f"select count(*) from ((from {left} except all from {right}) "
                       f"union all (from {right} except all from {left}))").fetchone()[0]
