"""The end-to-end check the tests share, whatever runs the pipeline: shop traffic, then two cycles of one cdc_drain,
one warehouse and one data_docs run (`airflow dags test` in-process, or the running scheduler and its executor),
after which the published marts equal what PostgreSQL says, and a change made after the first cycle is in the
marts after the second."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import psycopg

from tidewater import assets, drain
from tidewater.config import Settings
from tidewater.gate import docs, publish
from tidewater.gate.suites import mart_names
from tidewater_dev.airflow_api import AirflowApi
from tidewater_shop import simulator

from . import executors
from .airflow import airflow_dags_test
from .lake import wait_for_cdc_catch_up
from .marts import differences

REVENUE_PER_DAY = """
    SELECT (o.placed_at AT TIME ZONE 'UTC')::date, sum(i.quantity * i.unit_price - i.discount_amount)
    FROM shop.order_items i JOIN shop.orders o USING (order_id) GROUP BY 1"""
UNITS_PER_PRODUCT = "SELECT product_id, sum(quantity) FROM shop.order_items GROUP BY 1"

Ran = TypeVar("Ran")


def assert_marts_follow_the_shop_through_two_cycles(settings: Settings, cycle: Callable[[], Ran]) -> list[Ran]:
    """Shop traffic, `cycle()` (one drain, one warehouse and one data_docs run, to success), checks; one order item
    changed, `cycle()` again, checks. Returns what each cycle returned.

    After the first cycle: the published marts' revenue per day and units per product equal PostgreSQL's, the
    publication pointer names the new publication, every published mart equals the warehouse's table, and both
    data docs sites are served and in the lake. After the second: the change is in the published marts, which
    still equal PostgreSQL's figures."""
    simulator.run_traffic(settings.shop_conninfo(), seed=2026, rate=1000, duration=0.2)

    first, ran_first = _published_cycle(settings, cycle)

    assert _published_figures(settings) == _shop_figures(settings)
    lake = drain.open_lake(settings)
    assert lake.bucket.get_json(publish.POINTER_KEY)["publication_id"] == first
    with publish.open_published(settings) as con:
        con.execute(f"attach '{settings.warehouse_path}' as warehouse (read_only)")
        marts = mart_names()
        assert {table: differences(con, f"warehouse.main.{table}", f"marts.main.{table}") for table in marts} == \
            dict.fromkeys(marts, 0)
    for site in docs.SITES:
        assert docs.resolve_file(settings, site, "index.html"), site
        assert lake.bucket.keys(f"{docs.LAKE_PREFIX}/{site}/index.html") == [f"{docs.LAKE_PREFIX}/{site}/index.html"]

    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        item, product = conn.execute("UPDATE shop.order_items SET quantity = quantity + 7 WHERE order_item_id = "
                                     "(SELECT min(order_item_id) FROM shop.order_items) "
                                     "RETURNING order_item_id, product_id").fetchone()
    units_before = _published_figures(settings)[1][product]

    _, ran_second = _published_cycle(settings, cycle)

    revenue, units = _published_figures(settings)
    assert units[product] == units_before + 7, f"order item {item}'s change is not in the published marts"
    assert (revenue, units) == _shop_figures(settings)
    return [ran_first, ran_second]


def dags_test_cycle() -> None:
    """cdc_drain, warehouse, then data_docs, each with `airflow dags test` (in-process: no scheduler, no executor)."""
    for dag_id in ("cdc_drain", "warehouse", "data_docs"):
        done = airflow_dags_test(dag_id)
        assert done.returncode == 0, f"airflow dags test {dag_id} failed:\n{done.stdout[-5000:]}"


def scheduler_cycle(api: AirflowApi, settings: Settings, timeout_s: float = 900) -> list[tuple[str, str]]:
    """A cdc_drain run triggered under the running scheduler and executor, the warehouse run that the drain's
    lake event schedules, then a data_docs run triggered, all to success; returns their (dag_id, run_id).

    The warehouse is unpaused for the whole cycle (a paused DAG has no run queued by an asset event), and paused
    again once none of its runs is active: unpausing may first start its daily run, which ours then waits for
    (max_active_runs=1). The lake event is the newest since the cycle began: a cdc_drain run the scheduler started
    itself (on its interval or the watcher) may be the one that landed the changes, and a run that lands nothing
    sends none."""
    began = datetime.now(UTC)
    with executors.unpaused(api, "warehouse", timeout_s):
        drained = executors.run_dag(api, "cdc_drain", timeout_s)
        built = executors.run_scheduled_by(api, assets.raw_lake(settings).uri, "warehouse", began, timeout_s)
        state = executors.wait_for_run(api, "warehouse", built, timeout_s)
    assert state == "success", f"warehouse run {built} ended {state}: {executors.unsuccessful(api, 'warehouse', built)}"
    return [("cdc_drain", drained), ("warehouse", built), ("data_docs", executors.run_dag(api, "data_docs", timeout_s))]


def _published_cycle(settings: Settings, cycle: Callable[[], Ran]) -> tuple[str, Ran]:
    """`cycle()` once Debezium has every change in Kafka; the new publication's id (asserted new) and what the cycle
    returned."""
    wait_for_cdc_catch_up(settings)
    before = publish.current_publication(settings)
    ran = cycle()
    current = publish.current_publication(settings)
    assert current is not None and current != before, "the warehouse run published nothing new"
    return current, ran


def _shop_figures(settings: Settings) -> tuple[dict, dict]:
    with psycopg.connect(settings.shop_conninfo(admin=True)) as conn:
        return dict(conn.execute(REVENUE_PER_DAY).fetchall()), dict(conn.execute(UNITS_PER_PRODUCT).fetchall())


def _published_figures(settings: Settings) -> tuple[dict, dict]:
    with publish.open_published(settings) as con:
        revenue = dict(con.execute("select sales_date, net_revenue_amount from mart_daily_sales").fetchall())
        units = dict(con.execute("select product_id, units_sold from mart_product_performance "
                                 "where units_sold > 0").fetchall())
    return revenue, units
