"""`airflow dags test warehouse` on the native stack: Cosmos builds the star schema from the real lake."""

from __future__ import annotations

import duckdb
import psycopg

from tidewater.config import get_connection
from tidewater.duck import load_httpfs, s3_secret_sql

from .lake_checks import wait_for_cdc_catch_up
from .test_cdc_drain_dag import airflow_dags_test


def test_dags_test_warehouse_builds_facts_equal_to_the_shop(shop_changes):
    wait_for_cdc_catch_up(shop_changes)
    drained = airflow_dags_test("cdc_drain")
    assert drained.returncode == 0, drained.stdout[-3000:]

    built = airflow_dags_test("warehouse")

    assert built.returncode == 0, built.stdout[-5000:]
    with psycopg.connect(shop_changes.shop_conninfo(admin=True)) as conn:
        items, units = conn.execute("SELECT count(*), sum(quantity) FROM shop.order_items").fetchone()
    with duckdb.connect(shop_changes.warehouse_path, read_only=True) as con:
        load_httpfs(con)
        con.execute(s3_secret_sql(get_connection(shop_changes.lake_conn_id)))
        assert con.execute("select count(*), sum(quantity) from fct_order_items").fetchone() == (items, units)
