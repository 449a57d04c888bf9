"""Changes made in the shop arrive in Kafka as the exact Debezium events, tombstones included."""

from __future__ import annotations

import json
import uuid

import psycopg

from tests.support.lake import now_ms, read_events
from tidewater.cdc.connector import table_topic


def test_insert_update_delete_arrive_as_exact_events_with_tombstone(cdc):
    since = now_ms()
    email = f"cdc-{uuid.uuid4().hex[:8]}@example.com"
    with psycopg.connect(cdc.shop_conninfo(), autocommit=True) as conn:
        customer_id = conn.execute(
            "INSERT INTO shop.customers (email, full_name, phone, birth_date, preferences) "
            "VALUES (%s, 'Jörg Ünal', '+49 1', '1999-12-31', '{\"tier\": \"gold\"}') RETURNING customer_id",
            (email,),
        ).fetchone()[0]
        conn.execute("UPDATE shop.customers SET phone = '+49 2' WHERE customer_id = %s", (customer_id,))
        conn.execute("DELETE FROM shop.customers WHERE customer_id = %s", (customer_id,))

    events = read_events(cdc, table_topic(cdc, "customers"), since, "customer_id", customer_id, count=4)

    assert [value["payload"]["op"] if value else None for _, value in events] == ["c", "u", "d", None]
    created, updated, deleted = (value["payload"] for _, value in events[:3])
    assert created["before"] is None
    assert created["after"]["email"] == email
    assert created["after"]["full_name"] == "Jörg Ünal"
    assert created["after"]["birth_date"] == 10956  # io.debezium.time.Date: days since the epoch
    assert json.loads(created["after"]["preferences"]) == {"tier": "gold"}
    # REPLICA IDENTITY FULL: updates and deletes carry the whole old row.
    assert updated["before"]["phone"] == "+49 1"
    assert updated["after"]["phone"] == "+49 2"
    assert deleted["before"]["email"] == email
    assert deleted["after"] is None
    tombstone_key, _ = events[3]
    assert tombstone_key["payload"] == {"customer_id": customer_id}
    lsns = [payload["source"]["lsn"] for payload in (created, updated, deleted)]
    assert lsns == sorted(lsns) and len(set(lsns)) == 3
    assert {payload["source"]["table"] for payload in (created, updated, deleted)} == {"customers"}
    assert events[0][1]["schema"]["name"] == "shop.shop.customers.Envelope"


def test_price_update_keeps_toasted_description_as_placeholder(cdc):
    since = now_ms()
    with psycopg.connect(cdc.shop_conninfo(), autocommit=True) as conn:
        product_id = conn.execute(
            "INSERT INTO shop.products (sku, product_name, category, description, price) "
            "VALUES (%s, 'Long One', 'books', repeat('long description ', 400), 12345678.91) RETURNING product_id",
            (f"TOAST-{uuid.uuid4().hex[:8]}",),
        ).fetchone()[0]
        conn.execute("UPDATE shop.products SET price = 0.05 WHERE product_id = %s", (product_id,))

    [(_, created), (_, value)] = read_events(cdc, table_topic(cdc, "products"), since, "product_id", product_id,
                                                count=2)

    assert created["payload"]["after"]["description"].startswith("long description")
    payload = value["payload"]
    assert payload["op"] == "u"
    assert payload["before"] is None  # REPLICA IDENTITY DEFAULT on products: no old image
    assert payload["after"]["description"] == "__debezium_unavailable_value"
    # decimal.handling.mode=string: the exact text, with the column's NUMERIC(12,2) in the field's parameters
    # (docs/lake.md: a binary decimal cannot carry NaN).
    price_field = next(f for f in value["schema"]["fields"][1]["fields"] if f["field"] == "price")
    assert price_field["type"] == "string"
    assert {key: price_field["parameters"][f"__debezium.source.column.{key}"] for key in ("type", "length", "scale")} \
        == {"type": "NUMERIC", "length": "12", "scale": "2"}
    assert payload["after"]["price"] == "0.05"
