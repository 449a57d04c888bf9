"""`airflow backfill create` under the running scheduler rebuilds exactly those days' facts, equal to a full refresh."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager

import duckdb
import psycopg
import pytest

from tests.support.airflow import airflow_dags_test
from tests.support.dbt import dbt
from tests.support.lake import wait_for_cdc_catch_up
from tidewater.config import REPO_ROOT

DAYS = ("2026-01-05", "2026-01-06", "2026-01-07")
FACT_COLUMNS = "order_item_id, order_id, product_key, customer_key, order_date_key, quantity, net_amount, placed_at"


def _place_orders_on(days, conninfo: str) -> list[int]:
    """Two orders with items on each day (noon UTC); returns the order ids."""
    orders = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        customer, product = conn.execute("SELECT min(customer_id), (SELECT min(product_id) FROM shop.products) "
                                         "FROM shop.customers").fetchone()
        for day in days:
            for quantity in (1, 3):
                order = conn.execute("INSERT INTO shop.orders (customer_id, status, total_amount, placed_at) "
                                     "VALUES (%s, 'placed', 10, %s) RETURNING order_id",
                                     (customer, f"{day} 12:00:00+00")).fetchone()[0]
                conn.execute("INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price) "
                             "VALUES (%s, %s, %s, 2.50)", (order, product, quantity))
                orders.append(order)
    return orders


def _facts(con, where: str) -> list[tuple]:
    return con.execute(f"select {FACT_COLUMNS} from fct_order_items where {where} order by order_item_id").fetchall()


def _runs(airflow_api, **params) -> list[dict]:
    return airflow_api.request("GET", "dags/warehouse/dagRuns", params={"limit": 100, **params})["dag_runs"]


def wait_for(what: str, done, timeout_s: float = 1500):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := done():
            return result
        time.sleep(5)
    raise AssertionError(f"{what} did not happen in {timeout_s:.0f} s")


@contextmanager
def _unpaused_and_idle(airflow_api):
    """The warehouse DAG unpaused (the scheduler runs no task of a paused DAG, backfills included) once the runs
    that unpausing starts (queued lake events, the latest day) are over; paused again afterwards."""
    airflow_api.wait_for_dag("warehouse")
    airflow_api.request("PATCH", "dags/warehouse", json={"is_paused": False})
    try:
        time.sleep(10)  # let the scheduler create what unpausing starts
        wait_for("the warehouse DAG's runs after unpausing",
              lambda: not _runs(airflow_api, state=["queued", "running"]), timeout_s=900)
        yield
    finally:
        airflow_api.request("PATCH", "dags/warehouse", json={"is_paused": True})


def _backfill(airflow_api) -> list[dict]:
    """`airflow backfill create` for DAYS under the running scheduler; the runs once the backfill completed."""
    before = airflow_api.request("GET", "backfills", params={"dag_id": "warehouse"})["backfills"]
    for unfinished in (b for b in before if not b["completed_at"]):  # left by an interrupted test run
        airflow_api.request("PUT", f"backfills/{unfinished['id']}/cancel")
    before = {b["id"] for b in before}
    created = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "airflow"), "backfill", "create", "--dag-id", "warehouse",
         "--from-date", DAYS[0], "--to-date", DAYS[-1], "--max-active-runs", "1", "--reprocess-behavior", "completed"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert created.returncode == 0, created.stdout + created.stderr
    [backfill] = [b for b in airflow_api.request("GET", "backfills", params={"dag_id": "warehouse"})["backfills"]
                  if b["id"] not in before]
    wait_for(f"backfill {backfill['id']} completing",
          lambda: airflow_api.request("GET", f"backfills/{backfill['id']}")["completed_at"])
    return sorted((run for run in _runs(airflow_api, run_type=["backfill"])
                   if run["logical_date"][:10] in DAYS), key=lambda run: run["logical_date"])


@pytest.mark.timeout(2400)  # four warehouse runs under the scheduler, one slot for DuckDB
def test_backfill_of_three_days_equals_the_full_refresh_for_those_days(shop_changes, airflow_api, tmp_path):
    settings = shop_changes
    _place_orders_on(DAYS, settings.shop_conninfo())
    wait_for_cdc_catch_up(settings)
    drained = airflow_dags_test("cdc_drain")
    assert drained.returncode == 0, drained.stdout[-3000:]
    built = dbt("build", warehouse=settings.warehouse_path)
    assert built.returncode == 0, built.stdout[-4000:]
    in_days = f"placed_at >= '{DAYS[0]}' and placed_at < date '{DAYS[-1]}' + 1"
    outside = "placed_at >= date '2026-01-08'"
    with _unpaused_and_idle(airflow_api):
        with duckdb.connect(settings.warehouse_path) as con:
            # Those days' facts point at a wrong (but existing) customer version, and so does one fact
            # outside them: the backfill must repair the first and leave the second alone. (A corruption the
            # gate would catch, such as a lost fact or a negative quantity, would rightly stop the publish.)
            wrong_key = con.execute("select max(customer_key) from dim_customer").fetchone()[0]
            assert _facts(con, in_days), "no facts on the backfilled days"
            con.execute(f"update fct_order_items set customer_key = ? where {in_days}", [wrong_key])
            marked = con.execute(f"select min(order_item_id) from fct_order_items where {outside} "
                                 "and customer_key <> ?", [wrong_key]).fetchone()[0]
            con.execute("update fct_order_items set customer_key = ? where order_item_id = ?", [wrong_key, marked])
        runs = _backfill(airflow_api)

    assert [run["state"] for run in runs] == ["success"] * len(DAYS), runs
    full_refresh = str(tmp_path / "full.duckdb")
    rebuilt = dbt("run", "--select", "+fct_order_items", "--full-refresh", warehouse=full_refresh)
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    with duckdb.connect(settings.warehouse_path, read_only=True) as con, \
            duckdb.connect(full_refresh, read_only=True) as full:
        assert _facts(con, in_days) == _facts(full, in_days)
        assert con.execute("select customer_key from fct_order_items where order_item_id = ?",
                           [marked]).fetchone() == (wrong_key,)
