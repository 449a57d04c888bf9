"""Reading back what a drain wrote, and what Kafka holds, to compare the two."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from io import BytesIO

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition

from tidewater.cdc.topics import consumer_config
from tidewater.drain import lake as layout
from tidewater.drain.lake import Lake


def read_raw(lake: Lake, topic: str) -> pa.Table:
    tables = [pq.read_table(BytesIO(lake.client.get_object(Bucket=lake.bucket, Key=key)["Body"].read()))
              for key in lake.keys(layout.raw_table_prefix(topic)) if key.endswith(".parquet")]
    tables = [t for t in tables if t.column("_kafka_topic")[0].as_py() == topic]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def read_quarantine(lake: Lake, topic: str) -> list[dict]:
    rows = []
    for key in lake.keys(layout.quarantine_prefix(topic)):
        body = lake.client.get_object(Bucket=lake.bucket, Key=key)["Body"].read().decode()
        rows += [json.loads(line) for line in body.splitlines()]
    return rows


def landed_offsets(lake: Lake, topic: str) -> Counter:
    """(partition, offset) → how many times it is in the lake (raw rows + quarantined records)."""
    raw = read_raw(lake, topic)
    counts = Counter(zip(raw.column("_kafka_partition").to_pylist(), raw.column("_kafka_offset").to_pylist(),
                         strict=True)) if raw.num_rows else Counter()
    counts.update((row["partition"], row["offset"]) for row in read_quarantine(lake, topic))
    return counts


def kafka_records(settings, topic: str, ends: dict[int, int] | None = None) -> dict[tuple[int, int], bytes | None]:
    """(partition, offset) → value for every record below `ends` (default: now), tombstones as None."""
    consumer = Consumer(consumer_config(settings, **{"group.id": f"check-{uuid.uuid4()}",
                                                     "enable.auto.commit": False}))
    records: dict[tuple[int, int], bytes | None] = {}
    try:
        if ends is None:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        for partition, end in ends.items():
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if end <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            while len([k for k in records if k[0] == partition]) < end - low:
                for message in consumer.consume(num_messages=1000, timeout=5):
                    if message.error() is None and message.offset() < end:
                        records[(partition, message.offset())] = message.value()
            consumer.unassign()
    finally:
        consumer.close()
    return records
