"""IPython startup (jupyter profile of docker compose): attaches the published marts read-only in every kernel.

  marts   DuckDB with the marts' DuckLake catalog attached read-only as `marts` and in use: the catalog through
          the marts reader's PostgreSQL role (AIRFLOW_CONN_MARTS_CATALOG_READER), the data files through the
          marts-reader S3 user, which can list and read marts/ and nothing else

  marts.sql("show tables")
  marts.sql("select * from mart_daily_sales limit 10").df()
  marts.sql("from marts.tidewater.publications order by published_at desc limit 1")   # what you are reading
  marts.sql("from marts.snapshots()")                                                  # time travel: docs/marts.md

Each query (or each transaction you open with `begin`) reads one publication whole. Before the first
publication (the warehouse DAG's publish task) the marts do not exist; run %run -i on this file
(~/.ipython/profile_default/startup/00-open-marts.py) to try again.
"""

from __future__ import annotations

import os

import duckdb

from tidewater.config import ConfigError, Connection, Settings, get_connection
from tidewater.duck import create_s3_secret, load_extensions
from tidewater.lake import catalog


def _reader_s3() -> Connection:
    """The marts-reader user's S3 connection, from the variables docker/services.yaml gives this container."""
    return Connection(
        conn_id="marts_reader_s3", conn_type="aws",
        login=os.environ["TIDEWATER_S3_ACCESS_KEY"], password=os.environ["TIDEWATER_S3_SECRET_KEY"],
        extra={"endpoint_url": f"http://{os.environ['TIDEWATER_S3_HOST']}:{os.environ['TIDEWATER_S3_PORT']}",
               "region_name": os.environ.get("TIDEWATER_S3_REGION", "us-east-1")},
    )


def open_marts(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the marts catalog attached read-only as the marts reader, and in use."""
    con = duckdb.connect()
    load_extensions(con, "httpfs", "ducklake", "postgres")
    create_s3_secret(con, _reader_s3())
    catalog.attach(con, catalog.MARTS, get_connection(settings.marts_reader_conn_id),
                   catalog.data_path(settings, catalog.MARTS), read_only=True)
    con.execute(f"use {catalog.MARTS}")
    return con


try:
    marts = open_marts(Settings.from_env())
except (duckdb.Error, ConfigError) as exc:
    marts = None
    print(f"[tidewater] could not attach the published marts: {str(exc).splitlines()[0]}")
else:
    tables = [row[0] for row in marts.sql("select table_name from duckdb_tables() where database_name = 'marts' "
                                          "and schema_name = 'main' order by 1").fetchall()]
    if not tables:
        print("[tidewater] nothing published yet: run the warehouse DAG first")
    else:
        print("[tidewater] marts (read-only, one publication per query):", ", ".join(tables))
