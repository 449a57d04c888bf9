"""dbt staging on a real lake: every change once, exact duplicates and Debezium re-deliveries removed."""

from __future__ import annotations

import os
import subprocess

import duckdb
import psycopg
import pyarrow.compute as pc

from tests.support.dbt import TABLES, dbt
from tests.support.lake import drain_once, read_raw, wait_for_cdc_catch_up
from tidewater.cdc.connector import table_topic
from tidewater.drain.drainer import Replay
from tidewater.lake import commit


def staged(warehouse: str, sql: str) -> tuple:
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchone()


def test_staging_keeps_each_change_once(shop_changes, lake, group_id, tmp_path):
    for table in TABLES:
        drain_once(shop_changes, lake, table_topic(shop_changes, table), group_id)
    landed = read_raw(lake, table_topic(shop_changes, "orders"))
    # A Debezium re-delivery: the same changes again at new offsets after a connector restart.
    lake.con.execute("insert into lake.main.orders select * replace (_kafka_offset + 10000000 as _kafka_offset) "
                     "from lake.main.orders order by _kafka_offset limit 20")
    warehouse = str(tmp_path / "warehouse.duckdb")

    run = dbt("build", "--select", "staging", lake=lake, warehouse=warehouse)

    assert run.returncode == 0, run.stdout[-4000:]
    assert staged(warehouse, "select count(*), count(distinct change_id), max(_kafka_offset) from stg_shop__orders") \
        == (landed.num_rows, landed.num_rows, pc.max(landed["_kafka_offset"]).as_py())


def test_staging_reads_new_snapshots_only_and_follows_a_replay(shop_changes, lake, group_id, tmp_path):
    topic = table_topic(shop_changes, "orders")
    first = drain_once(shop_changes, lake, topic, group_id)
    warehouse = str(tmp_path / "warehouse.duckdb")
    assert (built := dbt("build", "--select", "stg_shop__orders", lake=lake, warehouse=warehouse)).returncode == 0, \
        built.stdout[-4000:]
    loaded_at = staged(warehouse, "select min(_loaded_at), count(*) from stg_shop__orders")
    middle = (first.partitions[0].start + first.partitions[0].end) // 2

    drain_once(shop_changes, lake, topic, group_id, replay=Replay(offsets={0: middle}))
    rebuilt = dbt("build", "--select", "stg_shop__orders", lake=lake, warehouse=warehouse)

    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    landed = read_raw(lake, topic)
    before = sum(1 for offset in landed["_kafka_offset"].to_pylist() if offset < middle)
    assert staged(warehouse, "select count(*), count(distinct change_id), count(distinct _lake_rowid) "
                             "from stg_shop__orders") == (landed.num_rows,) * 3
    # The changes before the replay point were not loaded again; the replayed ones were replaced.
    assert staged(warehouse, f"select count(*) from stg_shop__orders where _kafka_offset < {middle} "
                             f"and _loaded_at = timestamptz '{loaded_at[0]}'")[0] == before
    assert staged(warehouse, f"select count(*) from stg_shop__orders where _kafka_offset >= {middle} "
                             f"and _loaded_at > timestamptz '{loaded_at[0]}'")[0] == landed.num_rows - before
    with duckdb.connect(warehouse, read_only=True) as con:
        loads = con.execute("select snapshot_id from lake_loads where model = 'stg_shop__orders' "
                            "order by loaded_at").fetchall()
    current = lake.con.execute("select id from lake.current_snapshot()").fetchone()[0]
    assert len(loads) == 2 and loads[-1][0] == current


def test_data_tests_read_the_latest_batch_unless_asked_for_every_row(shop_changes, lake, group_id, tmp_path):
    drain_once(shop_changes, lake, table_topic(shop_changes, "orders"), group_id)
    warehouse = str(tmp_path / "warehouse.duckdb")
    assert (built := dbt("build", "--select", "stg_shop__orders", lake=lake,
                         warehouse=warehouse)).returncode == 0, built.stdout[-4000:]

    def unique_change_id_test(*args: str) -> subprocess.CompletedProcess:
        return dbt("test", "--select", "stg_shop__orders,test_name:unique", *args, lake=lake,
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


def test_after_a_backward_replay_the_warehouse_equals_postgresql_without_a_full_refresh(shop_changes, lake, group_id,
                                                                                        tmp_path):
    wait_for_cdc_catch_up(shop_changes)
    for table in ("orders", "customers"):
        drain_once(shop_changes, lake, table_topic(shop_changes, table), group_id)
    warehouse = str(tmp_path / "warehouse.duckdb")
    models = "+int_orders_current +int_customers_current"
    assert (built := dbt("build", "--select", models, lake=lake, warehouse=warehouse)).returncode == 0, \
        built.stdout[-4000:]
    with psycopg.connect(shop_changes.shop_conninfo()) as conn:
        orders = sorted(conn.execute("SELECT order_id, status, total_amount FROM shop.orders").fetchall())
    topic = table_topic(shop_changes, "orders")
    position = commit.read_positions(lake.con, topic).offsets[0]

    replayed = drain_once(shop_changes, lake, topic, group_id, replay=Replay(offsets={0: position // 3}))
    rebuilt = dbt("build", "--select", models, lake=lake, warehouse=warehouse)

    assert replayed.rows > 0 and rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    with duckdb.connect(warehouse, read_only=True) as con:
        current = sorted(con.execute("select order_id, order_status, order_total_amount "
                                     "from int_orders_current").fetchall())
        loads = con.execute("select count(*) from lake_loads where model = 'stg_shop__orders'").fetchone()[0]
    assert current == orders
    assert loads == 2  # two incremental builds, no full refresh


def test_dbt_debug_prints_no_secret(shop_changes, lake, group_id, tmp_path):
    """`dbt debug` prints the profile's connection keys (its settings among them): the S3 key and the catalog
    password live in DuckDB secrets, which it does not print; the connection it tests still works."""
    drain_once(shop_changes, lake, table_topic(shop_changes, "orders"), group_id)  # the lake's catalog exists
    debug = dbt("debug", lake=lake, warehouse=str(tmp_path / "warehouse.duckdb"))

    assert debug.returncode == 0 and "All checks passed" in debug.stdout, debug.stdout[-3000:]
    shown = debug.stdout + debug.stderr
    leaked = [name for name in ("TIDEWATER_S3_PIPELINE_SECRET_KEY", "TIDEWATER_LAKE_CATALOG_PASSWORD")
              if os.environ[name] in shown]
    assert not leaked, leaked
