"""Records of a test's own: produced to a scratch topic, copied from the shop's, and the topic deleted."""

from __future__ import annotations

import os

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tidewater.cdc.access import admin_config
from tidewater.cdc.connector import table_topic

from .lake import kafka_records


def delete_topic(settings, topic: str) -> None:
    admin = AdminClient(admin_config(os.environ))
    admin.delete_topics([topic])[topic].result()


def create_topic(settings, topic: str, partitions: int) -> None:
    admin = AdminClient(admin_config(os.environ))
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result()


def produce(settings, topic, values: list[bytes | None], partition: int | None = None) -> None:
    """`values` appended to `topic` (to `partition`, or where the key hashes to)."""
    producer = Producer(admin_config(os.environ))
    where = {} if partition is None else {"partition": partition}
    for value in values:
        producer.produce(topic, value=value, key=b'{"id": 1}', headers=[("source", b"test")], **where)
    assert producer.flush(30) == 0


def real_events(settings, count: int) -> list[bytes]:
    topic = table_topic(settings, "order_items")
    records = kafka_records(settings, topic)
    return [value for value in records.values() if value is not None][:count]
