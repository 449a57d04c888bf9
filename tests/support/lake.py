"""A test's own lake (bucket and catalog), one drain into it, and reading back what a drain wrote and what Kafka
holds, to compare the two."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import quote

import duckdb
import psycopg
import pyarrow as pa
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from tidewater import drain
from tidewater.cdc.connector import wait_for_catch_up as wait_for_cdc_catch_up  # noqa: F401 (tests import it here)
from tidewater.cdc.topics import consumer_config
from tidewater.config import Settings
from tidewater.drain import drainer, quarantine
from tidewater.drain.drainer import DrainLimits
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.lake import Lake, commit
from tidewater.lake import objects as layout
from tidewater.lake.objects import Bucket


def changes(lake: Lake, table: str, where: str = "true") -> pa.Table:
    """The change table's rows (empty if the table does not exist yet), in any lake: a test's or the instance's."""
    if commit.table_columns(lake.con, table) is None:
        return pa.table({})
    return lake.con.execute(f"SELECT * FROM {commit.CHANGES}.{table} WHERE {where}").to_arrow_table()


def read_raw(lake: Lake, topic: str) -> pa.Table:
    """The topic's rows in its change table."""
    return changes(lake, layout.table_of(topic), f"_kafka_topic = '{topic}'")


def read_quarantine(lake: Lake, topic: str, committed: bool = True) -> list[dict]:
    """The records of the topic's quarantine files: those a commit accepted, or (committed=False) every file."""
    keys = [f.key for f in quarantine.committed_files(lake) if f.topic == topic] if committed \
        else lake.bucket.keys(layout.quarantine_prefix(topic))
    rows = []
    for key in keys:
        body = lake.bucket.client.get_object(Bucket=lake.bucket.bucket, Key=key)["Body"].read().decode()
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


def now_ms() -> int:
    return int(time.time() * 1000)


def read_events(settings, topic: str, since_ms: int, key_field: str, key_value: int, count: int,
                timeout_s: float = 90) -> list[tuple[dict, dict | None]]:
    """(key, value) of the first `count` records for one row key written since `since_ms`.

    Tombstones come back as value None. Debezium creates a table's topic with its first change, so
    this waits for the topic, then starts each partition at the first offset at or after `since_ms`.
    """
    consumer = Consumer(consumer_config(settings, **{"group.id": f"test-{uuid.uuid4()}"}))
    deadline = time.monotonic() + timeout_s
    found: list[tuple[dict, dict | None]] = []
    try:
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            metadata = consumer.list_topics(topic, timeout=5).topics[topic]
            partitions = list(metadata.partitions) if metadata.error is None else []
            if not partitions:
                time.sleep(0.5)
        start = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in partitions], timeout=10)
        consumer.assign(start)
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


def wait_for_offsets(settings, topic: str, count: int, timeout_s: float = 60) -> None:
    consumer = Consumer(consumer_config(settings, **{"group.id": "wait"}))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            metadata = consumer.list_topics(topic, timeout=5).topics[topic]
            if metadata.error is None and metadata.partitions:
                high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5, cached=False)[1]
                if high >= count:
                    return
            time.sleep(0.5)
    finally:
        consumer.close()
    raise AssertionError(f"{topic} did not reach {count} records in {timeout_s}s")


@dataclass
class ScratchLake(Lake):
    """A lake of one test: its own bucket and catalog database. `env` points a subprocess (airflow dags test) at it."""

    env: dict[str, str] = field(default_factory=dict)
    conn_id: str = ""  # an Airflow connection id of its catalog, defined in this process's environment

    def settings(self, base: Settings) -> Settings:
        """`base`, pointed at this lake (for code that runs in the test's process)."""
        return replace(base, lake_bucket=self.bucket.bucket, lake_catalog_conn_id=self.conn_id)

    def changes(self, table: str, where: str = "true") -> pa.Table:
        """The change table's rows (empty if the table does not exist yet)."""
        return changes(self, table, where)


@contextmanager
def new_lake(settings: Settings) -> Iterator[ScratchLake]:
    """A new, empty lake (a bucket on the stack's MinIO, a catalog database owned by the catalog writer); removed
    afterwards. Nothing of the deployment's lake is touched."""
    from tests.deployment_state import minio_root_client
    from tidewater.config import get_connection
    from tidewater.lake import catalog

    # MinIO's root user creates and drops the test's bucket (test-*: the test instance gives the pipeline user the
    # pipeline's policy on it) and reads what the code under test wrote there as the pipeline user.
    client = minio_root_client(os.environ)
    name = f"test_{uuid.uuid4().hex[:12]}"
    bucket = name.replace("_", "-")
    client.create_bucket(Bucket=bucket)
    writer = get_connection(settings.lake_catalog_conn_id)
    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(writer.login)))
    metadata = replace(writer, schema=name)
    con = duckdb.connect()
    load_extensions(con, "httpfs", "ducklake", "postgres")
    con.execute(s3_secret_sql(get_connection(settings.lake_conn_id)))
    catalog.attach(con, catalog.LAKE, metadata, f"s3://{bucket}/{catalog.DATA_PREFIX[catalog.LAKE]}")
    lake = ScratchLake(con, Bucket(client, bucket), metadata, env={
        "TIDEWATER_LAKE_BUCKET": bucket,
        "TIDEWATER_LAKE_CATALOG_DB": name,
        "AIRFLOW_CONN_LAKE_CATALOG": f"postgresql://{quote(writer.login, safe='')}:"
                                     f"{quote(writer.password or '', safe='')}@{writer.host}:{writer.port}/{name}"})
    lake.conn_id = f"lake_catalog_{name}"
    conn_key = f"AIRFLOW_CONN_{lake.conn_id.upper()}"
    os.environ[conn_key] = lake.env["AIRFLOW_CONN_LAKE_CATALOG"]
    try:
        yield lake
    finally:
        os.environ.pop(conn_key, None)
        con.close()
        lake.bucket.delete(lake.bucket.keys(""))
        client.delete_bucket(Bucket=bucket)
        with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def drain_once(settings, lake, topic, group_id, replay=None, accept=False, partitions=None, **limits):
    """One drain of `topic` (its `partitions`, default all) into `lake` as consumer group `group_id` (`accept`:
    accept_quarantine; `limits`: DrainLimits)."""
    consumer = drain.kafka_consumer(settings, group_id=group_id)
    try:
        return drainer.drain_topic(consumer, lake, topic, drain.kafka_topic_id(settings, topic), DrainLimits(**limits),
                                   replay=replay, accept_quarantine=accept, partitions=partitions)
    finally:
        consumer.close()
