"""The published marts, read-only, for readers outside Airflow: the notebooks (`make notebook` natively, the jupyter
profile of docker compose) and scripts.

A reader gets the marts reader's credentials and nothing else, as the variables in READER_VARIABLES: the
read-only PostgreSQL role of the marts catalog (TIDEWATER_MARTS_READER_USER/_PASSWORD on TIDEWATER_PG_HOST:_PORT,
database TIDEWATER_MARTS_CATALOG_DB) and MinIO's marts reader, which lists and reads ``marts/`` of
TIDEWATER_LAKE_BUCKET only (TIDEWATER_S3_MARTS_READER_ACCESS_KEY/_SECRET_KEY on TIDEWATER_S3_HOST:_PORT).
No Airflow is needed (notebooks have their own virtualenv).

``open_marts()`` gives an in-memory DuckDB with the marts catalog attached READ_ONLY as ``marts`` and in use:
``select * from mart_daily_sales`` reads ``marts.main.mart_daily_sales``. Each query, or each transaction opened
with ``begin``, reads one publication whole (tidewater.gate.publish). ``open_read_only`` is the one way every
reader attaches the published marts (tidewater.gate.publish.open_published too).

  python -m tidewater.marts_reader variables    the names in READER_VARIABLES (stack/stack.sh notebook-up)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import duckdb

from tidewater.config import ConfigError, Connection, Settings
from tidewater.duck import create_s3_secret, load_extensions
from tidewater.lake import catalog

READER_VARIABLES = (
    "TIDEWATER_PG_HOST", "TIDEWATER_PG_PORT", "TIDEWATER_MARTS_CATALOG_DB",
    "TIDEWATER_MARTS_READER_USER", "TIDEWATER_MARTS_READER_PASSWORD",
    "TIDEWATER_S3_HOST", "TIDEWATER_S3_PORT", "TIDEWATER_S3_REGION", "TIDEWATER_LAKE_BUCKET",
    "TIDEWATER_S3_MARTS_READER_ACCESS_KEY", "TIDEWATER_S3_MARTS_READER_SECRET_KEY",
)


class NothingPublished(LookupError):
    """The marts catalog has never been written: no publication yet."""


def reader_connections(env: Mapping[str, str]) -> tuple[Connection, Connection, str]:
    """The marts reader's catalog connection, its S3 connection and the marts' data path, from READER_VARIABLES
    in `env`; ConfigError names what is missing."""
    missing = [name for name in READER_VARIABLES if not env.get(name)]
    if missing:
        raise ConfigError(f"not set: {', '.join(missing)}: a marts reader needs {', '.join(READER_VARIABLES)} "
                          "(`make notebook` and compose's jupyter service set them; docs/notebooks.md)")
    ports = {}
    for name in ("TIDEWATER_PG_PORT", "TIDEWATER_S3_PORT"):
        if not env[name].isdigit():
            raise ConfigError(f"{name}={env[name]!r} is not a port number")
        ports[name] = int(env[name])
    settings = Settings.from_env({name: env[name] for name in READER_VARIABLES})
    metadata = Connection(conn_id=settings.marts_reader_conn_id, conn_type="postgres", host=env["TIDEWATER_PG_HOST"],
                          port=ports["TIDEWATER_PG_PORT"], login=env["TIDEWATER_MARTS_READER_USER"],
                          password=env["TIDEWATER_MARTS_READER_PASSWORD"], schema=env["TIDEWATER_MARTS_CATALOG_DB"])
    s3 = Connection(conn_id=settings.marts_reader_s3_conn_id, conn_type="aws",
                    login=env["TIDEWATER_S3_MARTS_READER_ACCESS_KEY"],
                    password=env["TIDEWATER_S3_MARTS_READER_SECRET_KEY"],
                    extra={"endpoint_url": f"http://{env['TIDEWATER_S3_HOST']}:{ports['TIDEWATER_S3_PORT']}",
                           "region_name": env["TIDEWATER_S3_REGION"]})
    return metadata, s3, catalog.data_path(settings, catalog.MARTS)


def open_read_only(metadata: Connection, s3: Connection, data_path: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the marts catalog (`metadata`: the reader's role) attached READ_ONLY as ``marts``
    and in use, its files read with `s3`. Raises NothingPublished before the first publication."""
    con = duckdb.connect()
    try:
        load_extensions(con, "httpfs", "ducklake", "postgres")
        create_s3_secret(con, s3)
        catalog.attach(con, catalog.MARTS, metadata, data_path, read_only=True)
    except BaseException as error:
        con.close()
        if isinstance(error, duckdb.InvalidInputException) and \
                "creating a new DuckLake is explicitly disabled" in str(error):
            raise NothingPublished(f"the marts catalog (connection {metadata.conn_id!r}) holds no publication "
                                   "yet: run the warehouse DAG until it publishes (docs/marts.md)") from None
        raise
    con.execute(f"use {catalog.MARTS}")
    return con


def open_marts(env: Mapping[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """The published marts, read-only, with the reader credentials of `env` (default: this process's)."""
    return open_read_only(*reader_connections(os.environ if env is None else env))


if __name__ == "__main__":
    if sys.argv[1:] != ["variables"]:
        raise SystemExit(__doc__)
    print(*READER_VARIABLES)
