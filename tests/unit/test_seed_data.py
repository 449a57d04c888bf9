"""The demo's seed data is believable: edge cases belong in tests, not in what every demo mart shows."""

from __future__ import annotations

import csv
from decimal import Decimal

from tidewater_shop.simulator import SEED_DATA_DIR


def test_every_seed_price_is_a_shop_price():
    with (SEED_DATA_DIR / "products.csv").open(newline="") as file:
        prices = {row["sku"]: Decimal(row["price"]) for row in csv.DictReader(file)}

    assert len(prices) >= 10
    assert {sku: price for sku, price in prices.items() if not Decimal("0.50") <= price <= Decimal("2000")} == {}
