"""The shop tables the reconciliation compares and where the warehouse keeps each column.

The one place that maps a PostgreSQL column to its warehouse name: the staging models rename some
columns (dbt/models/staging); every other column keeps its name. Reconciliation reads the entity's
versions model (``int_<table>_versioned``), which keeps every staging column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ReconciledTable:
    name: str  # shop.<name> in PostgreSQL
    renamed: Mapping[str, str] = field(default_factory=dict)  # PostgreSQL column → staging column

    @property
    def staging_model(self) -> str:
        return f"stg_shop__{self.name}"

    @property
    def versions_model(self) -> str:
        return f"int_{self.name}_versioned"

    def warehouse_column(self, column: str) -> str:
        return self.renamed.get(column, column)


TABLES: tuple[ReconciledTable, ...] = (
    ReconciledTable("customers", {"preferences": "preferences_json", "marketing_opt_in": "is_marketing_opt_in"}),
    ReconciledTable("addresses", {"line1": "address_line_1", "line2": "address_line_2"}),
    ReconciledTable("products", {"category": "product_category", "description": "product_description",
                                 "attributes": "attributes_json", "price": "price_amount"}),
    ReconciledTable("orders", {"status": "order_status", "currency": "currency_code",
                               "total_amount": "order_total_amount"}),
    ReconciledTable("order_items", {"unit_price": "unit_price_amount"}),
    ReconciledTable("payments", {"provider_reference": "provider_reference_id", "status": "payment_status",
                                 "amount": "payment_amount"}),
)


def table(name: str) -> ReconciledTable:
    for candidate in TABLES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"shop table {name!r} is not reconciled: known tables are {', '.join(t.name for t in TABLES)}")
