"""Changes made in the shop arrive in Kafka as the exact Debezium events, tombstones included."""

from __future__ import annotations

import base64
import json
import time
import uuid
from decimal import Decimal

import psycopg
from confluent_kafka import Consumer, TopicPartition

from tidewater.cdc.connector import table_topic
from tidewater.cdc.topics import consumer_config


def end_offsets(settings, topic: str) -> list[TopicPartition]:
    consumer = Consumer(consumer_config(settings, **{"group.id": f"test-{uuid.uuid4()}"}))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        return [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in metadata.partitions
        ]
    finally:
        consumer.close()


def read_events(settings, start: list[TopicPartition], key_field: str, key_value: int, count: int,
                timeout_s: float = 60) -> list[tuple[dict, dict | None]]:
    """(key, value) of the next `count` records for one row key, tombstones as value None."""
    consumer = Consumer(consumer_config(settings, **{"group.id": f"test-{uuid.uuid4()}"}))
    consumer.assign(start)
    found: list[tuple[dict, dict | None]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            key = json.loads(message.key())
            if key["payload"][key_field] != key_value:
                continue
            found.append((key, json.loads(message.value()) if message.value() is not None else None))
    finally:
        consumer.close()
    return found


def test_insert_update_delete_arrive_as_exact_events_with_tombstone(cdc):
    topic = table_topic(cdc, "customers")
    # Debezium creates the topic with the first change; make sure one exists before reading offsets.
    start = end_offsets(cdc, topic)
    email = f"cdc-{uuid.uuid4().hex[:8]}@example.com"
    with psycopg.connect(cdc.shop_conninfo(), autocommit=True) as conn:
        customer_id = conn.execute(
            "INSERT INTO shop.customers (email, full_name, phone, birth_date, preferences) "
            "VALUES (%s, 'Jörg Ünal', '+49 1', '1999-12-31', '{\"tier\": \"gold\"}') RETURNING customer_id",
            (email,),
        ).fetchone()[0]
        conn.execute("UPDATE shop.customers SET phone = '+49 2' WHERE customer_id = %s", (customer_id,))
        conn.execute("DELETE FROM shop.customers WHERE customer_id = %s", (customer_id,))

    events = read_events(cdc, start, "customer_id", customer_id, count=4)

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
    start = end_offsets(cdc, table_topic(cdc, "products"))
    with psycopg.connect(cdc.shop_conninfo(), autocommit=True) as conn:
        product_id = conn.execute(
            "INSERT INTO shop.products (sku, product_name, category, description, price) "
            "VALUES (%s, 'Long One', 'books', repeat('long description ', 400), 12345678.91) RETURNING product_id",
            (f"TOAST-{uuid.uuid4().hex[:8]}",),
        ).fetchone()[0]
        conn.execute("UPDATE shop.products SET price = 0.05 WHERE product_id = %s", (product_id,))

    [(_, created), (_, value)] = read_events(cdc, start, "product_id", product_id, count=2)

    assert created["payload"]["after"]["description"].startswith("long description")
    payload = value["payload"]
    assert payload["op"] == "u"
    assert payload["before"] is None  # REPLICA IDENTITY DEFAULT on products: no old image
    assert payload["after"]["description"] == "__debezium_unavailable_value"
    price_field = next(f for f in value["schema"]["fields"][1]["fields"] if f["field"] == "price")
    assert price_field["name"] == "org.apache.kafka.connect.data.Decimal"
    scale = int(price_field["parameters"]["scale"])
    unscaled = int.from_bytes(base64.b64decode(payload["after"]["price"]), "big", signed=True)
    assert Decimal(unscaled).scaleb(-scale) == Decimal("0.05")
