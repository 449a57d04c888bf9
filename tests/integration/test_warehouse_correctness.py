"""The warehouse rebuilds the shop from its change log: current state equals PostgreSQL, versions equal changes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC

import duckdb
import psycopg
import pytest

from tidewater.cdc.connector import table_topic
from tidewater.config import get_connection
from tidewater.duck import load_httpfs, s3_secret_sql

from .conftest import new_bucket
from .lake_checks import wait_for_cdc_catch_up
from .test_dbt_staging import TABLES, dbt
from .test_drain import drain_once

# PostgreSQL column → warehouse column, where staging renamed it.
RENAMED = {
    "customers": {"preferences": "preferences_json", "marketing_opt_in": "is_marketing_opt_in"},
    "addresses": {"line1": "address_line_1", "line2": "address_line_2"},
    "products": {"category": "product_category", "description": "product_description",
                 "attributes": "attributes_json", "price": "price_amount"},
    "orders": {"status": "order_status", "currency": "currency_code", "total_amount": "order_total_amount"},
    "order_items": {"unit_price": "unit_price_amount"},
    "payments": {"provider_reference": "provider_reference_id", "status": "payment_status",
                 "amount": "payment_amount"},
}
KEYS = {"customers": "customer_id", "addresses": "address_id", "products": "product_id", "orders": "order_id",
        "order_items": "order_item_id", "payments": "payment_id"}


def _normal(value):
    """One representation for both sides: JSON parsed, UUIDs as text, times in UTC."""
    if isinstance(value, dict | list):
        return value
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        return value.astimezone(UTC)
    return value


@pytest.fixture(scope="module")
def warehouse(shop_changes, tmp_path_factory):
    """Edge cases made in the shop, everything drained into a fresh bucket, the warehouse built."""
    edge = {}
    with psycopg.connect(shop_changes.shop_conninfo(), autocommit=True) as conn:
        # One customer changed three times, then deleted: 5 versions.
        edge["customer"] = conn.execute(
            "INSERT INTO shop.customers (email, full_name) VALUES (%s, 'Ünï Cødé') RETURNING customer_id",
            (f"versions-{uuid.uuid4().hex[:8]}@example.com",)).fetchone()[0]
        for phone in ("+1", "+2", None):
            conn.execute("UPDATE shop.customers SET phone = %s WHERE customer_id = %s", (phone, edge["customer"]))
        conn.execute("DELETE FROM shop.customers WHERE customer_id = %s", (edge["customer"],))
        # A product whose long description is TOASTed, then two price changes that leave it unchanged.
        edge["product"] = conn.execute(
            "INSERT INTO shop.products (sku, product_name, category, description, price, is_active) "
            "VALUES (%s, 'Toasty', 'books', repeat('ß long text ', 500), 10.00, false) RETURNING product_id",
            (f"TOAST-{uuid.uuid4().hex[:8]}",)).fetchone()[0]
        for price in ("11.00", "12.50"):
            conn.execute("UPDATE shop.products SET price = %s WHERE product_id = %s", (price, edge["product"]))
        # An order placed before its product's price changes: the fact keeps the old product version.
        edge["pit_product"] = conn.execute(
            "INSERT INTO shop.products (sku, product_name, category, description, price, is_active) "
            "VALUES (%s, 'Timely', 'toys', 'd', 5.00, false) RETURNING product_id",
            (f"PIT-{uuid.uuid4().hex[:8]}",)).fetchone()[0]
        customer = conn.execute("SELECT min(customer_id) FROM shop.orders").fetchone()[0]
        order = conn.execute("INSERT INTO shop.orders (customer_id, status, total_amount) VALUES (%s, 'placed', 10) "
                             "RETURNING order_id", (customer,)).fetchone()[0]
        edge["pit_item"] = conn.execute(
            "INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price) VALUES (%s, %s, 2, 5.00) "
            "RETURNING order_item_id", (order, edge["pit_product"])).fetchone()[0]
        conn.execute("UPDATE shop.products SET price = 7.00 WHERE product_id = %s", (edge["pit_product"],))
    wait_for_cdc_catch_up(shop_changes)
    with new_bucket(shop_changes) as lake:
        group = f"test-warehouse-{uuid.uuid4().hex[:8]}"
        for table in TABLES:
            drain_once(shop_changes, lake, table_topic(shop_changes, table), group)
        path = str(tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb")
        run = dbt("build", bucket=lake.bucket, warehouse=path)
        assert run.returncode == 0, run.stdout[-4000:]
        con = duckdb.connect(path, read_only=True)
        load_httpfs(con)
        con.execute(s3_secret_sql(get_connection(shop_changes.lake_conn_id)))
        yield con, edge
        con.close()


@pytest.mark.parametrize("table", TABLES)
def test_current_state_equals_postgres_row_for_row(shop_changes, warehouse, table):
    con, _ = warehouse
    key = KEYS[table]
    with psycopg.connect(shop_changes.shop_conninfo(admin=True)) as conn:
        cursor = conn.execute(f"SELECT * FROM shop.{table} ORDER BY {key}")
        columns = [c.name for c in cursor.description]
        source = [[_normal(v) for v in row] for row in cursor.fetchall()]
    selected = ", ".join(RENAMED[table].get(c, c) for c in columns)
    built = [[_normal(v) for v in row]
             for row in con.execute(f"select {selected} from int_{table}_current order by {key}").fetchall()]

    assert len(built) == len(source)
    assert built == source


def test_every_change_is_a_version(warehouse):
    con, edge = warehouse
    versions = con.execute(
        "select version_number, _op, phone, is_deleted, is_current, valid_to is null "
        "from int_customers_versioned where customer_id = ? order by version_number", [edge["customer"]]).fetchall()

    assert versions == [
        (1, "c", None, False, False, False),
        (2, "u", "+1", False, False, False),
        (3, "u", "+2", False, False, False),
        (4, "u", None, False, False, False),
        (5, "d", None, True, True, True),
    ]
    assert con.execute("select count(*) from int_customers_current where customer_id = ?",
                       [edge["customer"]]).fetchone() == (0,)


def test_unchanged_toasted_values_carry_forward(warehouse):
    con, edge = warehouse
    rows = con.execute(
        "select price_amount, product_description = repeat('ß long text ', 500) "
        "from int_products_versioned where product_id = ? order by version_number", [edge["product"]]).fetchall()

    assert [(str(price), same) for price, same in rows] == [("10.00", True), ("11.00", True), ("12.50", True)]


def test_facts_join_the_product_version_valid_when_the_order_was_placed(warehouse):
    con, edge = warehouse
    version, price_then, price_now = con.execute(
        """select dim_product.version_number, dim_product.price_amount, current_product.price_amount
           from fct_order_items
           join dim_product using (product_key)
           join dim_product as current_product
             on current_product.product_id = fct_order_items.product_id and current_product.is_current
           where order_item_id = ?""", [edge["pit_item"]]).fetchone()

    assert (version, str(price_then), str(price_now)) == (1, "5.00", "7.00")


def test_marts_equal_figures_computed_in_postgres(shop_changes, warehouse):
    con, _ = warehouse
    with psycopg.connect(shop_changes.shop_conninfo(admin=True)) as conn:
        revenue_per_day = dict(conn.execute(
            """SELECT o.placed_at::date, sum(i.quantity * i.unit_price - i.discount_amount)
               FROM shop.order_items i JOIN shop.orders o USING (order_id) GROUP BY 1""").fetchall())
        units_per_product = dict(conn.execute(
            "SELECT product_id, sum(quantity) FROM shop.order_items GROUP BY 1").fetchall())
        lifetime_value = dict(conn.execute(
            "SELECT customer_id, sum(total_amount) FROM shop.orders WHERE status <> 'cancelled' GROUP BY 1").fetchall())

    assert dict(con.execute("select sales_date, net_revenue_amount from mart_daily_sales "
                            "where units_sold > 0").fetchall()) == revenue_per_day
    assert dict(con.execute("select product_id, units_sold from mart_product_performance").fetchall()) == \
        units_per_product
    assert dict(con.execute("select customer_id, lifetime_value_amount from mart_customer_lifetime_value "
                            "where order_count > 0").fetchall()) == lifetime_value
