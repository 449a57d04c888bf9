"""IPython startup (jupyter profile of docker compose): opens the published marts read-only in every kernel.

  marts       DuckDB on the current publication's marts.duckdb (TIDEWATER_MARTS_DIR, on a read-only volume)
  lake_marts  DuckDB views over the same publication's Parquet files on S3 (through marts/_current.json),
              read with the marts-reader user, which can list and read marts/ and nothing else

  marts.sql("show tables")
  lake_marts.sql("select * from mart_daily_sales limit 10").df()

Before the first publication (the warehouse DAG's publish task) neither exists; run %run -i on this file
(~/.ipython/profile_default/startup/00-open-marts.py) to try again.
"""

from __future__ import annotations

import json
import os

import duckdb

from tidewater.config import Connection, Settings
from tidewater.duck import connect_lake
from tidewater.gate.publish import POINTER_KEY, published_path
from tidewater.gate.stage import sql_string


def _reader() -> Connection:
    """The marts-reader user's S3 connection, from the variables docker/services.yaml gives this container."""
    return Connection(
        conn_id="marts_reader", conn_type="aws",
        login=os.environ["TIDEWATER_S3_ACCESS_KEY"], password=os.environ["TIDEWATER_S3_SECRET_KEY"],
        extra={"endpoint_url": f"http://{os.environ['TIDEWATER_S3_HOST']}:{os.environ['TIDEWATER_S3_PORT']}",
               "region_name": os.environ.get("TIDEWATER_S3_REGION", "us-east-1")},
    )


def open_local(settings: Settings) -> duckdb.DuckDBPyConnection | None:
    path = published_path(settings)
    return duckdb.connect(str(path), read_only=True) if path.exists() else None


def open_lake(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per published mart, reading the Parquet files on S3."""
    con = connect_lake(_reader())
    pointer = f"s3://{settings.lake_bucket}/{POINTER_KEY}"
    manifest = json.loads(con.execute(f"select content from read_text({sql_string(pointer)})").fetchone()[0])
    for table, uri in manifest["tables"].items():
        con.execute(f'create view "{table}" as select * from read_parquet({sql_string(uri)})')
    return con


_settings = Settings.from_env()
marts = open_local(_settings)
try:
    lake_marts = open_lake(_settings)
except duckdb.Error as exc:
    lake_marts = None
    print(f"[tidewater] no published marts on S3 yet ({str(exc).splitlines()[0]})")
if marts is None:
    print(f"[tidewater] no published marts.duckdb yet in {_settings.marts_dir}: run the warehouse DAG first")
else:
    print("[tidewater] marts (local, read-only):", ", ".join(row[0] for row in marts.sql("show tables").fetchall()))
if lake_marts is not None:
    print("[tidewater] lake_marts (S3, read-only user): views", ", ".join(
        row[0] for row in lake_marts.sql("show tables").fetchall()))
