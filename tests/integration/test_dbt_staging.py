"""dbt staging on a real lake: every change once, exact duplicates and Debezium re-deliveries removed."""

from __future__ import annotations

import os
import subprocess
from io import BytesIO
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidewater.cdc.connector import table_topic
from tidewater.config import REPO_ROOT, get_connection
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.lake import objects as layout

from .lake_checks import read_raw
from .test_drain import drain_once

TABLES = ("customers", "addresses", "products", "orders", "order_items", "payments")


def dbt(*args: str, bucket: str, warehouse: str) -> subprocess.CompletedProcess:
    """dbt on the given bucket and warehouse file; its target folder (compiled SQL, run results) beside the file."""
    env = {**os.environ, "TIDEWATER_LAKE_BUCKET": bucket, "TIDEWATER_WAREHOUSE_PATH": warehouse,
           "DBT_PROFILES_DIR": str(REPO_ROOT / "dbt"), "DBT_TARGET_PATH": str(Path(warehouse).parent / "target")}
    return subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "dbt"), *args, "--project-dir", str(REPO_ROOT / "dbt")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO_ROOT / "dbt")


def test_staging_keeps_each_change_once(shop_changes, lake_bucket, group_id, tmp_path):
    for table in TABLES:
        drain_once(shop_changes, lake_bucket, table_topic(shop_changes, table), group_id)
    orders_topic = table_topic(shop_changes, "orders")
    landed = read_raw(lake_bucket, orders_topic)
    [first_key] = [k for k in lake_bucket.keys(layout.raw_table_prefix(orders_topic)) if k.endswith(".parquet")][:1]
    body = lake_bucket.client.get_object(Bucket=lake_bucket.bucket, Key=first_key)["Body"].read()
    # An exact duplicate of landed records (a file written twice under another name) ...
    lake_bucket.put_parquet(first_key.replace(".parquet", "-copy.parquet"), body)
    # ... and a Debezium re-delivery: the same changes again at new offsets after a connector restart.
    redelivered = pq.read_table(BytesIO(body))
    redelivered = redelivered.set_column(
        redelivered.schema.get_field_index("_kafka_offset"), "_kafka_offset",
        pc.add(redelivered["_kafka_offset"], pa.scalar(10_000_000, pa.int64())))
    buffer = BytesIO()
    pq.write_table(redelivered, buffer)
    lake_bucket.put_parquet(first_key.rsplit("/", 1)[0] + "/redelivered.parquet", buffer.getvalue())
    warehouse = str(tmp_path / "warehouse.duckdb")

    run = dbt("build", "--select", "staging", bucket=lake_bucket.bucket, warehouse=warehouse)

    assert run.returncode == 0, run.stdout[-4000:]
    with duckdb.connect(warehouse, read_only=True) as con:
        load_extensions(con, "httpfs")
        con.execute(s3_secret_sql(get_connection(shop_changes.lake_conn_id)))
        staged = con.execute("select count(*), count(distinct change_id), max(_kafka_offset) "
                             "from stg_shop__orders").fetchone()
    assert staged == (landed.num_rows, landed.num_rows, pc.max(landed["_kafka_offset"]).as_py())


def test_data_tests_read_the_latest_batch_unless_asked_for_every_row(shop_changes, lake_bucket, group_id, tmp_path):
    drain_once(shop_changes, lake_bucket, table_topic(shop_changes, "orders"), group_id)
    warehouse = str(tmp_path / "warehouse.duckdb")
    assert (built := dbt("build", "--select", "stg_shop__orders", bucket=lake_bucket.bucket,
                         warehouse=warehouse)).returncode == 0, built.stdout[-4000:]

    def unique_change_id_test(*args: str) -> subprocess.CompletedProcess:
        return dbt("test", "--select", "stg_shop__orders,test_name:unique", *args, bucket=lake_bucket.bucket,
                   warehouse=warehouse)

    def duplicate_one_change(loaded_at: str) -> None:
        with duckdb.connect(warehouse) as con:
            con.execute("delete from stg_shop__orders where _kafka_offset < 0")
            con.execute("insert into stg_shop__orders select * replace "
                        f"(-1 as _kafka_offset, {loaded_at} as _loaded_at) from stg_shop__orders limit 1")

    # A duplicate in the rows the last build loaded fails the build's test ...
    duplicate_one_change("_loaded_at")
    assert unique_change_id_test().returncode == 1
    # ... one in an earlier batch is outside an incremental build's tests, not outside a full test run.
    duplicate_one_change("_loaded_at - interval 1 day")
    assert unique_change_id_test().returncode == 0
    everything = unique_change_id_test("--vars", "{full_tests: true}")
    assert everything.returncode == 1
    assert "unique_stg_shop__orders_change_id" in everything.stdout
