"""The demo shop's marts as the gate publishes and checks them (``TIDEWATER_GATE_MARTS=tidewater_shop.marts``).

The dbt models are the shop's dbt package (examples/shop/dbt); keys, foreign keys and the order statuses are
its dbt tests (models/marts/_marts.yml), checked on the warehouse before anything is published. These suites
check what publication adds: values in their ranges, and the facts against the source's current state.
"""

from __future__ import annotations

from tidewater.gate.suites import (
    FIRST_DATE_KEY,
    Batch,
    Expectation,
    at_least_zero,
    date_key_in_range,
    not_null,
    positive,
    valid_from_before_valid_to,
)

# Published in this order, each replacing its previous publication (tidewater.gate.publish).
MARTS = ("dim_customer", "dim_product", "dim_date", "fct_order_items", "fct_orders", "mart_daily_sales",
         "mart_customer_lifetime_value", "mart_product_performance")

# What the reconciliation compares the facts with, from the warehouse's current state of the source. It counts
# the current order items whose order has landed too: each table's topic is drained on its own, so a run can
# hold items of orders that the next run brings (they are facts from then on). An item that claims an order the
# facts do not have is dbt's relationships test's business.
SOURCE_FIGURES = """
    with placeable_items as (
        select items.* from int_order_items_current as items
        where items.order_id in (select order_id from int_orders_current)
    )
    select
        count(*) as item_count,
        sum(quantity * unit_price_amount - discount_amount) as net_revenue_amount
    from placeable_items
"""

BATCHES: tuple[Batch, ...] = (
    Batch("dim_customer", "select * from dim_customer", (
        *not_null("customer_id", "version_number", "valid_from"), valid_from_before_valid_to())),
    Batch("dim_product", "select * from dim_product", (
        *not_null("product_id", "version_number", "valid_from"),
        *at_least_zero("price_amount", "weight_grams"), valid_from_before_valid_to())),
    Batch("dim_date", "select * from dim_date", (
        *not_null("date_day"),
        Expectation("expect_column_values_to_be_between",
                    {"column": "date_key", "min_value": FIRST_DATE_KEY, "max_value": 21000101}))),
    Batch("fct_order_items", "select * from fct_order_items", (
        *not_null("product_id", "customer_id"),
        positive("quantity"), *at_least_zero("unit_price_amount", "discount_amount", "gross_amount"),
        date_key_in_range("order_date_key"))),
    Batch("fct_orders", "select * from fct_orders", (
        *not_null("customer_id", "placed_at"),
        *at_least_zero("order_total_amount", "item_count", "unit_count"), date_key_in_range("order_date_key"))),
    Batch("mart_daily_sales", "select * from mart_daily_sales", (
        *at_least_zero("orders_placed", "orders_cancelled", "units_sold"),)),
    Batch("mart_customer_lifetime_value", "select * from mart_customer_lifetime_value", (
        *at_least_zero("order_count", "lifetime_value_amount"),)),
    Batch("mart_product_performance", "select * from mart_product_performance", (
        *at_least_zero("order_count", "units_sold"),)),
    Batch("reconciliation",
          "select (select count(*) from fct_order_items) as fact_item_count, "
          "source.item_count as source_item_count, "
          "(select sum(net_amount) from fct_order_items) as fact_net_revenue_amount, "
          "source.net_revenue_amount as source_net_revenue_amount "
          "from gate.source_state as source",
          (Expectation("expect_column_pair_values_to_be_equal",
                       {"column_A": "fact_item_count", "column_B": "source_item_count"}),
           Expectation("expect_column_pair_values_to_be_equal",
                       {"column_A": "fact_net_revenue_amount", "column_B": "source_net_revenue_amount"}))),
)
