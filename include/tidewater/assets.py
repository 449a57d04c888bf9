"""The Airflow Assets Tidewater's DAGs produce and consume: one definition, imported by every DAG."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias, AssetWatcher

from tidewater.config import ConfigError, Settings
from tidewater.lake.objects import DATA, data_table_prefix

# cdc_drain attaches an event for each table that landed data to this alias (tables are found at run time).
RAW_TABLES = AssetAlias("tidewater_raw_tables")

# Assets are named by their URI (Airflow's default), not by a fixed name: Airflow keeps one active asset
# per name, and `airflow dags test` writes every DAG of the folder as parsed in its environment, so a test
# run against another bucket (TIDEWATER_LAKE_BUCKET) would take the name from the deployment's asset and
# fail its next run ("inactive assets in its outlets"; seen in `make test`).


def raw_table(settings: Settings, table: str) -> Asset:
    """A change table of the lake, named by where its data files are."""
    return Asset(uri=f"s3://{settings.lake_bucket}/{data_table_prefix(table).rstrip('/')}")


def raw_lake(settings: Settings) -> Asset:
    """One event per cdc_drain run that landed anything: what the warehouse is scheduled on."""
    return Asset(uri=f"s3://{settings.lake_bucket}/{DATA}")


def lake_read_variable(settings: Settings) -> str:
    """The Airflow Variable the warehouse DAG's dbt_build sets to the lake snapshot its run reads, so a drain knows
    whether the changes the previous drain landed (the raw_lake event's snapshot_id) are read yet."""
    return f"tidewater_warehouse_lake_snapshot_{settings.lake_bucket}"


def unread(landed: int | None, read: str | None) -> bool:
    """Whether a drain landed snapshot `landed` (None: no drain yet) after the one the warehouse last read (`read`,
    the Variable's value; None before any warehouse run)."""
    return landed is not None and (read is None or landed > int(read))


def published_marts(settings: Settings) -> Asset:
    """One event per publication of the marts (the warehouse DAG's publish task, after the gate passed)."""
    return Asset(uri=f"s3://{settings.lake_bucket}/marts")


def data_docs(settings: Settings) -> Asset:
    """One event per rebuild of the data docs sites (the data_docs DAG), copied under s3://<bucket>/docs/."""
    return Asset(uri=f"s3://{settings.lake_bucket}/docs")


SCHEDULES = ("events", "interval")


def watches(settings: Settings) -> bool:
    """Whether cdc_drain runs on new records (and its interval), not on its interval alone."""
    if settings.drain_schedule not in SCHEDULES:
        raise ConfigError(f"TIDEWATER_DRAIN_SCHEDULE={settings.drain_schedule!r}: use events (a run on new CDC "
                          "records, the interval as a fallback) or interval (every TIDEWATER_DRAIN_INTERVAL_MINUTES)")
    return settings.drain_schedule == "events"


def watched_topics(settings: Settings) -> list[str]:
    """The topics the watcher subscribes to: the registry's table topics, or TIDEWATER_DRAIN_TOPIC_REGEX as a
    librdkafka pattern subscription (``^…``)."""
    if settings.drain_topic_regex:
        return ["^" + settings.drain_topic_regex.removeprefix("^")]
    from tidewater.tables import registry

    return [table.topic(settings.cdc_topic_prefix) for table in registry()]


def change_event(message: Any) -> dict[str, Any]:
    """The watcher's event payload for a Kafka record (every record fires, tombstones too)."""
    return {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}


def cdc_changes(settings: Settings) -> Asset:
    """The CDC topics as an Asset (``kafka://<first bootstrap server>/<topic>,<topic>…``, the common-messaging queue
    URI) that a watcher updates whenever a record arrives: cdc_drain's event-driven schedule.

    The watcher is the Kafka provider's trigger (common-messaging's ``MessageQueueTrigger``, scheme ``kafka``) in
    the triggerer, consumer group ``tidewater-cdc-watch`` of the connection ``kafka_cdc_watch``
    (``auto.offset.reset=latest``, nothing ever committed): each instance waits for the first record written after
    it started, fires one asset event and ends; the triggerer starts it again. So records fire a drain, an idle
    topic fires nothing, and a stream of records fires about one event per restart. What a drain reads never
    depends on the watcher: it drains from the lake's positions to the high watermarks it sees at start
    (docs/drain.md, "Event-driven")."""
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    from tidewater.cdc.topics import consumer_config
    from tidewater.lineage import kafka_topic_uri

    topics = watched_topics(settings)
    trigger = MessageQueueTrigger(scheme="kafka", topics=topics, kafka_config_id=settings.kafka_watch_conn_id,
                                  apply_function=f"{__name__}.change_event", commit_offset=False,
                                  poll_timeout=1, poll_interval=1)
    return Asset(uri=kafka_topic_uri(consumer_config(settings)["bootstrap.servers"], ",".join(topics)),
                 watchers=[AssetWatcher(name="cdc_changes_watcher", trigger=trigger)])
