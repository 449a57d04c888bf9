"""What the gate expects of the marts: one suite per batch, as plain data (no Great Expectations import).

A batch is a table of the candidate publication (the marts, copied from the warehouse) or a small frame
the gate derives from it with SQL, because pandas expectations see one table at a time: the reconciliation
on one row of totals (facts against the warehouse's current state of the source), the freshness on the
newest change's age. Keys and foreign keys are dbt's tests, never checked here again.
`tidewater.gate.context` turns these into GX suites, validation definitions and checkpoints at run time
(git-ignored files under great_expectations/, rebuilt when this changes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidewater.tables import registry

FIRST_DATE_KEY = 20000101
# Filled in at each run (checkpoint expectation parameters): they depend on the day and on the settings.
MAX_DATE_KEY = {"$PARAMETER": "max_date_key"}
MAX_CHANGE_AGE_HOURS = {"$PARAMETER": "max_change_age_hours"}

MARTS = ("dim_customer", "dim_product", "dim_date", "fct_order_items", "fct_orders", "mart_daily_sales",
         "mart_customer_lifetime_value", "mart_product_performance")


@dataclass(frozen=True)
class Expectation:
    type: str  # GX's snake_case name, e.g. expect_column_values_to_be_unique
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """One validated frame: its name (the suite, validation definition and checkpoint share it) and SQL."""

    name: str
    sql: str
    expectations: tuple[Expectation, ...] = field(default_factory=tuple)


def not_null(*columns: str) -> list[Expectation]:
    return [Expectation("expect_column_values_to_not_be_null", {"column": column}) for column in columns]


def at_least_zero(*columns: str) -> list[Expectation]:
    return [Expectation("expect_column_values_to_be_between", {"column": column, "min_value": 0})
            for column in columns]


def positive(column: str) -> Expectation:
    return Expectation("expect_column_values_to_be_between", {"column": column, "min_value": 0, "strict_min": True})


def order_date_key_in_range() -> Expectation:
    return Expectation("expect_column_values_to_be_between",
                       {"column": "order_date_key", "min_value": FIRST_DATE_KEY, "max_value": MAX_DATE_KEY})


def valid_from_before_valid_to() -> Expectation:
    return Expectation("expect_column_pair_values_a_to_be_greater_than_b",
                       {"column_A": "valid_to", "column_B": "valid_from", "or_equal": True})


# The warehouse figures the gate compares the marts with, copied into the candidate's `gate` schema.
# Reconciliation counts the current order items whose order has landed too: each table's topic is drained on
# its own, so a run can hold items of orders that the next run brings (they are facts from then on). An item
# that claims an order the facts do not have is dbt's relationships test's business.
SOURCE_STATE_SQL = """
with placeable_items as (
    select items.* from int_order_items_current as items
    where items.order_id in (select order_id from int_orders_current)
)
select
    (select count(*) from placeable_items) as item_count,
    (select sum(quantity * unit_price_amount - discount_amount) from placeable_items) as net_revenue_amount,
    (select max(newest) from (
        {newest_changes}
    )) as newest_change_at,
    now() as staged_at
"""
FUTURE_TOLERANCE_MINUTES = 5  # clock skew between the source and the warehouse that still counts as now


def source_state_sql() -> str:
    # A change dated in the future (a source clock ahead, a bad row) is no sign of freshness: counting it would
    # hide staleness and fail every publication until the clock caught up.
    newest = "\n        union all ".join(
        f"select max(valid_from) filter (where valid_from <= now() + interval '{FUTURE_TOLERANCE_MINUTES} minutes') "
        f"as newest from {table.versions_model}" for table in registry())
    return SOURCE_STATE_SQL.format(newest_changes=newest)


# Keys (unique, not null), foreign keys and the order statuses are model invariants: dbt tests check them, on the
# warehouse, before anything is published (dbt/models/marts/_marts.yml). The gate checks what publication adds:
# values in their ranges, the facts against the source's current state, the source's freshness.
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
        order_date_key_in_range())),
    Batch("fct_orders", "select * from fct_orders", (
        *not_null("customer_id", "placed_at"),
        *at_least_zero("order_total_amount", "item_count", "unit_count"), order_date_key_in_range())),
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
    Batch("freshness",
          "select newest_change_at, "
          "epoch(staged_at - newest_change_at) / 3600.0 as newest_change_age_hours from gate.source_state",
          (*not_null("newest_change_at"),
           Expectation("expect_column_values_to_be_between",
                       {"column": "newest_change_age_hours", "min_value": -1, "max_value": MAX_CHANGE_AGE_HOURS}))),
)


def batch(name: str) -> Batch:
    for candidate in BATCHES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no gate batch named {name!r}; known: {', '.join(b.name for b in BATCHES)}")
