"""What the freshness SLA measures, from the real systems: the published marts' pointer and the newest
landed change of each table (both in the lake), and each drained topic's lag (Kafka)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from tidewater.alerts.freshness import Measurement, State, age_minutes
from tidewater.config import Settings

STATE_KEY = "_alerts/freshness_state.json"
MARTS_POINTER_KEY = "marts/_current.json"  # tidewater.gate.publish.POINTER_KEY (not imported: it pulls duckdb)
_DT = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/$")


class StateObject:
    """The breach state as one JSON object in the lake: durable, and readable by anyone debugging."""

    def __init__(self, lake: Any, key: str = STATE_KEY) -> None:
        self.lake, self.key = lake, key

    def load(self) -> State:
        return self.lake.get_json(self.key) or {}

    def save(self, state: State) -> None:
        self.lake.put_json(self.key, state)


def _folders(lake: Any, prefix: str) -> list[str]:
    folders: list[str] = []
    for page in lake.client.get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=prefix,
                                                                       Delimiter="/"):
        folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
    return folders


def marts_measurement(lake: Any, settings: Settings, now: datetime) -> Measurement:
    pointer = lake.get_json(MARTS_POINTER_KEY)
    published = datetime.fromisoformat(pointer["published_at"]) if pointer else None
    return Measurement(
        key="marts", subject="published marts",
        value=age_minutes(published, now) if published else None,
        limit=settings.freshness_max_mart_age_minutes, unit="minutes old",
        detail=(f"publication {pointer['publication_id']} ({lake.uri(MARTS_POINTER_KEY)}), published at "
                f"{pointer['published_at']}") if pointer else "",
    )


def change_measurements(lake: Any, settings: Settings, now: datetime) -> list[Measurement]:
    """Per table in raw/: the newest `_source_ts` in its newest date folder (folders are change dates)."""
    from tidewater import duck
    from tidewater.config import get_connection

    tables = {folder.rstrip("/").rsplit("/", 1)[-1]: folder for folder in _folders(lake, "raw/")}
    measurements = []
    con = None
    try:
        for table, folder in sorted(tables.items()):
            dates = sorted(folder_ for folder_ in _folders(lake, folder) if _DT.search(folder_))
            if not dates:
                continue
            if con is None:
                con = duck.connect_lake(get_connection(settings.lake_conn_id))
            newest = con.execute("select max(_source_ts) from read_parquet(?, union_by_name = true)",
                                 [lake.uri(dates[-1] + "*.parquet")]).fetchone()[0]
            measurements.append(Measurement(
                key=f"change:{table}", subject=f"newest landed change of table {table}",
                value=age_minutes(newest, now) if newest else None,
                limit=settings.freshness_max_change_age_minutes, unit="minutes old",
                detail=f"newest _source_ts {newest.isoformat() if newest else 'none'} in {lake.uri(dates[-1])}",
            ))
    finally:
        if con is not None:
            con.close()
    return measurements


def lag_measurements(consumer: Any, settings: Settings) -> list[Measurement]:
    """Per drained topic: Kafka's high watermark minus the drain group's committed offset, over partitions
    (a partition the group never committed counts from the oldest retained record)."""
    from confluent_kafka import TopicPartition

    from tidewater import drain

    measurements = []
    for topic in drain.discover_topics(consumer, settings):
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        partitions = [TopicPartition(topic, partition) for partition in metadata.partitions]
        lag = 0
        for committed in consumer.committed(partitions, timeout=30):
            low, high = consumer.get_watermark_offsets(committed, timeout=30)
            lag += high - (committed.offset if committed.offset >= 0 else low)
        measurements.append(Measurement(
            key=f"lag:{topic}", subject=f"lag of topic {topic}", value=lag,
            limit=settings.freshness_max_topic_lag, unit="records behind",
            detail=f"high watermark minus the committed offset of consumer group "
                   f"{consumer_group(settings)!r}, summed over {len(partitions)} partition(s)",
        ))
    return measurements


def consumer_group(settings: Settings) -> str:
    from tidewater.cdc.topics import consumer_config

    return str(consumer_config(settings).get("group.id", ""))


def measure_all(settings: Settings, lake: Any, consumer: Any, now: datetime) -> list[Measurement]:
    return [marts_measurement(lake, settings, now), *change_measurements(lake, settings, now),
            *lag_measurements(consumer, settings)]


def require_bucket(lake: Any, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    from tidewater.config import ConfigError

    try:
        lake.client.head_bucket(Bucket=lake.bucket)
    except ClientError as exc:
        raise ConfigError(f"lake bucket {lake.bucket!r} is not reachable through connection {settings.lake_conn_id!r} "
                          f"({exc}): check TIDEWATER_LAKE_BUCKET, or run `make stack-up`") from exc


def check_freshness(settings: Settings, now: datetime) -> list:
    """Measures everything, mails each breach and recovery once, keeps the state in the lake."""
    from tidewater import drain
    from tidewater.alerts import freshness, notify

    lake = drain.open_lake(settings)
    require_bucket(lake, settings)
    # The drain's own group id, only to read its committed offsets: this consumer never subscribes, so it
    # never joins the group or moves its offsets.
    consumer = drain.kafka_consumer(settings)
    try:
        measurements = measure_all(settings, lake, consumer, now)
    finally:
        consumer.close()
    store = StateObject(lake)
    return freshness.check(measurements, load_state=store.load, save_state=store.save,
                           send=lambda email: notify.send(settings, email), now=now)
