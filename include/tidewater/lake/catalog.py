"""Attaching a DuckLake catalog: metadata in PostgreSQL, data files on S3 (docs/lake.md).

Every credential comes from an Airflow connection: the catalog's PostgreSQL connection (a writer's or a
reader's) and the S3 connection the data files are read and written with.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from tidewater.config import Connection, Settings, get_connection
from tidewater.duck import create_s3_secret, load_extensions
from tidewater.sqltext import identifier, literal, redacting

LAKE = "lake"  # the alias the change tables' catalog is attached as
MARTS = "marts"  # the alias the published marts' catalog is attached as
DATA_PREFIX = {LAKE: "lake/", MARTS: "marts/"}  # where each catalog's data files live in the lake bucket


def data_path(settings: Settings, alias: str) -> str:
    return f"s3://{settings.lake_bucket}/{DATA_PREFIX[alias]}"


def attach(con: duckdb.DuckDBPyConnection, alias: str, metadata: Connection, data_path: str,
           read_only: bool = False) -> None:
    """Attaches the DuckLake whose metadata database `metadata` names as `alias` (created on first attach).

    DuckLake keeps the data path in its metadata; `data_path` is what a new catalog gets. ATTACH takes no
    parameters: its values are quoted literals, and its errors (which quote the conninfo) lose the password.
    """
    if not metadata.schema:
        raise ValueError(f"connection {metadata.conn_id!r}: no database (schema) set: it names the DuckLake catalog")
    options = [f"DATA_PATH {literal(data_path)}", "METADATA_SCHEMA 'public'"]
    if read_only:
        options.append("READ_ONLY")
    with redacting(metadata.password):
        con.execute(f"ATTACH {literal('ducklake:postgres:' + metadata.postgres_conninfo())} AS {identifier(alias)} "
                    f"({', '.join(options)})")


class EmptyLake(LookupError):
    """The lake holds no change table yet of some of the tables asked for: no drain has landed their changes."""


def current_snapshot(settings: Settings, tables: Iterable[str] = (), drained: int | None = None) -> int:
    """The snapshot a warehouse run reads the lake as of in every model (one view of the lake per run, whatever
    drains commit meanwhile): `drained`, the last commit of the newest cdc_drain run, where given and in the lake;
    else the lake's newest. EmptyLake, naming them, if any of `tables` has no change table (``lake.main``) as of it:
    their staging models would have nothing to read."""
    con = connect(settings)
    try:
        newest = con.execute(f"SELECT id FROM {LAKE}.current_snapshot()").fetchone()[0]
        snapshot = drained if drained is not None and 0 <= drained <= newest else newest
        missing = [table for table in tables if not table_exists(con, table, snapshot)]
        if missing:
            raise EmptyLake(f"the lake holds no changes yet of {', '.join(missing)} (snapshot {snapshot}): no "
                            "cdc_drain run has landed any (a source table gets its change table with its first "
                            "change; one that stays empty can leave the table registry)")
        return snapshot
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, table: str, snapshot: int, schema: str = "main") -> bool:
    """Whether the lake has the table as of `snapshot`."""
    try:
        con.execute(f"SELECT 1 FROM {LAKE}.{identifier(schema)}.{identifier(table)} AT (VERSION => {int(snapshot)}) "
                    "LIMIT 0")
    except duckdb.CatalogException:
        return False
    return True


def connect(settings: Settings, *aliases: str, read_only: bool = False,
            database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the S3 secret and the named catalogs attached (the pipeline's writer by default;
    `read_only` attaches them read-only: the marts alone as their reader, with MinIO's reader user, which may not
    read the lake's files)."""
    con = duckdb.connect(database)
    load_extensions(con, "httpfs", "ducklake", "postgres")
    marts_reader = read_only and LAKE not in (aliases or (LAKE,))
    create_s3_secret(con, get_connection(settings.marts_reader_s3_conn_id if marts_reader else settings.lake_conn_id))
    for alias in aliases or (LAKE,):
        conn_id = settings.lake_catalog_conn_id if alias == LAKE else (
            settings.marts_reader_conn_id if read_only else settings.marts_catalog_conn_id)
        attach(con, alias, get_connection(conn_id), data_path(settings, alias), read_only=read_only)
    return con
