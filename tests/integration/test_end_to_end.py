"""End to end, as a user runs it: shop traffic → Debezium → `airflow dags test cdc_drain` → `airflow dags test
warehouse` (dbt through Cosmos, GX gate, publish) → the published marts equal what PostgreSQL says, and a change
made after the first cycle is in the marts after the next one."""

from __future__ import annotations

import psycopg

from tests.support.airflow import airflow_dags_test
from tests.support.lake import wait_for_cdc_catch_up
from tests.support.marts import differences
from tidewater import drain
from tidewater.gate import docs, publish
from tidewater.gate.suites import mart_names
from tidewater_shop import simulator

REVENUE_PER_DAY = """
    SELECT (o.placed_at AT TIME ZONE 'UTC')::date, sum(i.quantity * i.unit_price - i.discount_amount)
    FROM shop.order_items i JOIN shop.orders o USING (order_id) GROUP BY 1"""
UNITS_PER_PRODUCT = "SELECT product_id, sum(quantity) FROM shop.order_items GROUP BY 1"


def _cycle(settings) -> str:
    """One drain and one warehouse run, as `make demo` does them; returns the new publication's id."""
    wait_for_cdc_catch_up(settings)
    drained = airflow_dags_test("cdc_drain")
    assert drained.returncode == 0, drained.stdout[-3000:]
    before = publish.current_publication(settings)
    built = airflow_dags_test("warehouse")
    assert built.returncode == 0, built.stdout[-5000:]
    current = publish.current_publication(settings)
    assert current is not None and current != before, "the warehouse run published nothing new"
    return current


def _shop_figures(settings) -> tuple[dict, dict]:
    with psycopg.connect(settings.shop_conninfo(admin=True)) as conn:
        return dict(conn.execute(REVENUE_PER_DAY).fetchall()), dict(conn.execute(UNITS_PER_PRODUCT).fetchall())


def _published_figures(settings) -> tuple[dict, dict]:
    with publish.open_published(settings) as con:
        revenue = dict(con.execute("select sales_date, net_revenue_amount from mart_daily_sales").fetchall())
        units = dict(con.execute("select product_id, units_sold from mart_product_performance "
                                 "where units_sold > 0").fetchall())
    return revenue, units


def test_published_marts_follow_the_shop_through_two_cycles(shop_changes):
    settings = shop_changes
    simulator.run_traffic(settings.shop_conninfo(), seed=2026, rate=1000, duration=0.2)

    first = _cycle(settings)

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

    _cycle(settings)

    revenue, units = _published_figures(settings)
    assert units[product] == units_before + 7, f"order item {item}'s change is not in the published marts"
    assert (revenue, units) == _shop_figures(settings)
