"""Business traffic for the shop: an initial load and a continuous stream of realistic changes.

Every choice comes from one ``random.Random(seed)`` and every candidate row is picked by its rank in
primary-key order, so the same seed on the same starting state makes the same operations: a run is
reproducible, which the tests rely on. Each business operation is one transaction, as in a real shop
(an order and its items commit together, so Debezium gives them one transaction id).
"""

from __future__ import annotations

import csv
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from tidewater.tables import registry

SEED_DATA_DIR = Path(__file__).with_name("data")

_FIRST = ("Ada", "Björn", "Chloé", "Dmitri", "Émile", "Fatima", "Grace", "Hiro", "Inès", "José", "Kalani",
          "Léa", "Mateo", "Nour", "Olga", "Priya", "Quentin", "Renée", "Søren", "Tomás", "Ursula", "Zoë")
_LAST = ("Okafor", "Müller", "García", "Nakamura", "O'Brien", "Dubois", "Kowalski", "Rossi", "Çelik",
         "Andersson", "Nguyễn", "Smith", "Żółć", "Haddad", "Ivanova", "Lindqvist")
_CITIES = (("Berlin", "DE"), ("Lyon", "FR"), ("Porto", "PT"), ("Kraków", "PL"), ("Malmö", "SE"),
           ("Zürich", "CH"), ("Gent", "BE"), ("Bologna", "IT"), ("Cork", "IE"), ("Tartu", "EE"))
_STREETS = ("Hauptstraße", "Rue de la Paix", "Rua Augusta", "Floriańska", "Storgatan", "Via Zamboni")
_CATEGORIES = ("kitchen", "garden", "books", "toys", "audio", "outdoor", "office")
_WORDS = ("durable", "handmade", "recycled", "compact", "premium", "weatherproof", "ergonomic", "classic",
          "lightweight", "modular", "organic", "vintage", "wireless", "foldable", "artisan", "eco")
_PAYMENT_METHODS = ("card", "paypal", "bank_transfer", "voucher")


def product_description(rng: random.Random, name: str) -> str:
    """A few kB of text: long enough that PostgreSQL stores it out of line (TOAST)."""
    sentences = [
        f"{name} is {rng.choice(_WORDS)}, {rng.choice(_WORDS)} and {rng.choice(_WORDS)}."
        for _ in range(60)
    ]
    return " ".join(sentences)


@dataclass
class Counts:
    """Operations performed, by name."""

    by_operation: Counter[str] = field(default_factory=Counter)

    def add(self, operation: str, n: int = 1) -> None:
        self.by_operation[operation] += n

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.by_operation.items()))

    def summary(self) -> str:
        return " ".join(f"{name}={count}" for name, count in self.as_dict().items())


class Shop:
    """The shop's business operations against one connection (autocommit off: one tx per call)."""

    def __init__(self, conn: psycopg.Connection, rng: random.Random) -> None:
        self.conn = conn
        self.rng = rng

    # -- picking rows deterministically -------------------------------------------------------
    def _pick(self, table: str, key: str, where: str = "true") -> int | None:
        count = self.conn.execute(f"SELECT count(*) FROM shop.{table} WHERE {where}").fetchone()[0]
        if count == 0:
            return None
        offset = self.rng.randrange(count)
        row = self.conn.execute(
            f"SELECT {key} FROM shop.{table} WHERE {where} ORDER BY {key} OFFSET %s LIMIT 1", (offset,)
        ).fetchone()
        return row[0]

    # -- operations -----------------------------------------------------------------------------
    def sign_up(self) -> bool:
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        phone = None if rng.random() < 0.3 else f"+49 30 {rng.randrange(1_000_000, 9_999_999)}"
        birth_date = None if rng.random() < 0.2 else f"{rng.randrange(1950, 2006)}-{rng.randrange(1, 13):02d}-15"
        prefs = {"newsletter": rng.random() < 0.5, "language": rng.choice(["en", "de", "fr", "pt"])}
        opt_in = rng.random() < 0.4
        # An address already taken (the same seed run twice on one database) draws another.
        for _ in range(20):
            email = f"{first}.{last}.{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}@example.com".lower()
            row = self.conn.execute(
                """INSERT INTO shop.customers (email, full_name, phone, birth_date, marketing_opt_in, preferences)
                   VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (email) DO NOTHING RETURNING customer_id""",
                (email, f"{first} {last}", phone, birth_date, opt_in, json.dumps(prefs)),
            ).fetchone()
            if row:
                self._insert_address(row[0])
                return True
        return False

    def _insert_address(self, customer_id: int) -> None:
        rng = self.rng
        city, country = rng.choice(_CITIES)
        self.conn.execute(
            """INSERT INTO shop.addresses (customer_id, address_type, line1, city, postal_code, country_code)
               VALUES (%s, 'shipping', %s, %s, %s, %s)""",
            (customer_id, f"{rng.choice(_STREETS)} {rng.randrange(1, 200)}", city,
             f"{rng.randrange(10000, 99999)}", country),
        )

    def change_address(self) -> bool:
        address_id = self._pick("addresses", "address_id")
        if address_id is None:
            return False
        city, country = self.rng.choice(_CITIES)
        self.conn.execute(
            """UPDATE shop.addresses SET line1 = %s, city = %s, country_code = %s, updated_at = now()
               WHERE address_id = %s""",
            (f"{self.rng.choice(_STREETS)} {self.rng.randrange(1, 200)}", city, country, address_id),
        )
        return True

    def update_preferences(self) -> bool:
        customer_id = self._pick("customers", "customer_id")
        if customer_id is None:
            return False
        self.conn.execute(
            """UPDATE shop.customers
               SET preferences = preferences || jsonb_build_object('newsletter', %s::boolean),
                   marketing_opt_in = %s, updated_at = now()
               WHERE customer_id = %s""",
            (self.rng.random() < 0.5, self.rng.random() < 0.5, customer_id),
        )
        return True

    def change_price(self) -> bool:
        product_id = self._pick("products", "product_id", "is_active")
        if product_id is None:
            return False
        # A walk without drift (the factors' geometric mean is ~1), between a shop's bounds: with an upward drift
        # prices reached ~2e9 in a few days of traffic, and an order of a few such items overflowed its NUMERIC(12,2)
        # total. Only price and updated_at change: the TOASTed description is not rewritten.
        factor = Decimal(self.rng.choice(["0.80", "0.90", "0.95", "1.05", "1.10", "1.25"]))
        self.conn.execute(
            "UPDATE shop.products SET price = least(greatest(round(price * %s, 2), 0.99), 99999.99), "
            "updated_at = now() "
            "WHERE product_id = %s",
            (factor, product_id),
        )
        return True

    def place_order(self) -> bool:
        rng = self.rng
        customer_id = self._pick("customers", "customer_id")
        if customer_id is None:
            return False
        address = self.conn.execute(
            "SELECT address_id FROM shop.addresses WHERE customer_id = %s ORDER BY address_id LIMIT 1",
            (customer_id,),
        ).fetchone()
        order_id = self.conn.execute(
            "INSERT INTO shop.orders (customer_id, shipping_address_id, status) VALUES (%s, %s, 'placed') "
            "RETURNING order_id",
            (customer_id, address[0] if address else None),
        ).fetchone()[0]
        for _ in range(rng.randint(1, 4)):
            product_id = self._pick("products", "product_id", "is_active")
            if product_id is None:
                break
            discount = Decimal(rng.choice(["0", "0", "0", "1.50", "5.00"]))
            self.conn.execute(
                """INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price, discount_amount)
                   SELECT %s, product_id, %s, price, least(%s, price) FROM shop.products WHERE product_id = %s""",
                (order_id, rng.randint(1, 5), discount, product_id),
            )
        self._recompute_total(order_id)
        return True

    def _recompute_total(self, order_id: int) -> None:
        self.conn.execute(
            """UPDATE shop.orders o SET total_amount = coalesce(
                   (SELECT sum(quantity * unit_price - discount_amount) FROM shop.order_items i
                    WHERE i.order_id = o.order_id), 0), updated_at = now()
               WHERE order_id = %s""",
            (order_id,),
        )

    def pay_order(self) -> bool:
        order_id = self._pick("orders", "order_id", "status = 'placed'")
        if order_id is None:
            return False
        self.conn.execute(
            "UPDATE shop.orders SET status = 'paid', paid_at = now(), updated_at = now() WHERE order_id = %s",
            (order_id,),
        )
        self.conn.execute(
            """INSERT INTO shop.payments (order_id, payment_method, amount, status, provider_reference)
               SELECT order_id, %s, total_amount, 'captured', %s FROM shop.orders WHERE order_id = %s""",
            (self.rng.choice(_PAYMENT_METHODS), uuid.UUID(int=self.rng.getrandbits(128)), order_id),
        )
        return True

    def ship_order(self) -> bool:
        order_id = self._pick("orders", "order_id", "status = 'paid'")
        if order_id is None:
            return False
        self.conn.execute(
            "UPDATE shop.orders SET status = 'shipped', shipped_at = now(), updated_at = now() "
            "WHERE order_id = %s",
            (order_id,),
        )
        return True

    def cancel_order(self) -> bool:
        order_id = self._pick("orders", "order_id", "status = 'placed'")
        if order_id is None:
            return False
        self.conn.execute("DELETE FROM shop.order_items WHERE order_id = %s", (order_id,))
        self.conn.execute(
            "UPDATE shop.orders SET status = 'cancelled', cancelled_at = now(), total_amount = 0, "
            "updated_at = now() WHERE order_id = %s",
            (order_id,),
        )
        return True

    def delete_customer(self) -> bool:
        # Only customers who never ordered may go (orders keep their customer); addresses cascade.
        customer_id = self._pick(
            "customers", "customer_id",
            "NOT EXISTS (SELECT 1 FROM shop.orders o WHERE o.customer_id = customers.customer_id)",
        )
        if customer_id is None:
            return False
        self.conn.execute("DELETE FROM shop.customers WHERE customer_id = %s", (customer_id,))
        return True


# Relative frequency of each operation in continuous traffic.
OPERATION_WEIGHTS: dict[str, int] = {
    "sign_up": 8,
    "change_address": 5,
    "update_preferences": 4,
    "change_price": 5,
    "place_order": 30,
    "pay_order": 22,
    "ship_order": 16,
    "cancel_order": 5,
    "delete_customer": 1,
}


def _schedule(rate: float, duration: float) -> Iterator[float]:
    """Offsets (seconds from start) at which operations are due: rate x duration of them."""
    total = int(rate * duration)
    for index in range(total):
        yield index / rate


def run_traffic(
    conninfo: str,
    *,
    seed: int,
    rate: float,
    duration: float,
    progress: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Counts:
    """Runs ``rate * duration`` operations, paced at ``rate`` per second; returns what was done."""
    if rate <= 0 or duration < 0:
        raise ValueError(f"--rate must be > 0 and --duration >= 0 (got rate={rate}, duration={duration})")
    rng = random.Random(seed)
    names = list(OPERATION_WEIGHTS)
    weights = list(OPERATION_WEIGHTS.values())
    counts = Counts()
    started = time.monotonic()
    last_report = started
    with psycopg.connect(conninfo) as conn:
        shop = Shop(conn, rng)
        for due in _schedule(rate, duration):
            delay = started + due - time.monotonic()
            if delay > 0:
                sleep(delay)
            operation = rng.choices(names, weights)[0]
            with conn.transaction():
                done = getattr(shop, operation)()
            counts.add(operation if done else f"{operation}_skipped")
            if progress and time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                progress.write(f"[simulator] {sum(counts.by_operation.values())} ops: {counts.summary()}\n")
                progress.flush()
    return counts


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def seed_shop(
    conninfo: str,
    *,
    seed: int,
    customers: int,
    products: int,
    orders: int,
    csv_dir: Path | None = SEED_DATA_DIR,
) -> Counts:
    """Initial load: products and customers from CSV files (when given), then generated ones."""
    rng = random.Random(seed)
    counts = Counts()
    with psycopg.connect(conninfo) as conn:
        shop = Shop(conn, rng)
        with conn.transaction():
            if csv_dir is not None:
                counts.add("csv_products", _load_products_csv(conn, csv_dir / "products.csv", rng))
                counts.add("csv_customers", _load_customers_csv(conn, csv_dir / "customers.csv"))
            for index in range(products):
                name = f"{rng.choice(_WORDS).title()} {rng.choice(_CATEGORIES).title()} Item {index}"
                _insert_product(conn, rng, sku=f"GEN-{seed}-{index:05d}", name=name,
                                category=rng.choice(_CATEGORIES),
                                price=Decimal(rng.randrange(199, 19999)) / 100)
                counts.add("products")
            for _ in range(customers):
                shop.sign_up()
                counts.add("customers")
            for _ in range(orders):
                shop.place_order()
                counts.add("orders")
    return counts


def _insert_product(
    conn: psycopg.Connection, rng: random.Random, *, sku: str, name: str, category: str, price: Decimal
) -> None:
    attributes = {"color": rng.choice(["red", "green", "blue", "black"]), "tags": rng.sample(_WORDS, 2)}
    conn.execute(
        """INSERT INTO shop.products (sku, product_name, category, description, price, weight_grams, attributes)
           VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sku) DO NOTHING""",
        (sku, name, category, product_description(rng, name), price, rng.randrange(50, 5000),
         json.dumps(attributes)),
    )


def _load_products_csv(conn: psycopg.Connection, path: Path, rng: random.Random) -> int:
    rows = _read_csv(path)
    for row in rows:
        _insert_product(conn, rng, sku=row["sku"], name=row["product_name"], category=row["category"],
                        price=Decimal(row["price"]))
    return len(rows)


def _load_customers_csv(conn: psycopg.Connection, path: Path) -> int:
    rows = _read_csv(path)
    for row in rows:
        customer = conn.execute(
            """INSERT INTO shop.customers (email, full_name, phone, birth_date) VALUES (%s, %s, %s, %s)
               ON CONFLICT (email) DO NOTHING RETURNING customer_id""",
            (row["email"], row["full_name"], row["phone"] or None, row["birth_date"] or None),
        ).fetchone()
        if customer:
            conn.execute(
                """INSERT INTO shop.addresses (customer_id, address_type, line1, city, postal_code, country_code)
                   VALUES (%s, 'shipping', %s, %s, %s, %s)""",
                (customer[0], row["line1"], row["city"], row["postal_code"], row["country_code"]),
            )
    return len(rows)


def reset_shop(conninfo: str) -> None:
    """Empties every shop table and restarts their keys (Debezium sees the truncation as op 't')."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(
                sql.Identifier(table.schema, table.name) for table in registry() if table.schema == "shop"))
        )
