"""cdc_drain: Kafka CDC topics → typed Parquet on S3, exactly once. Wiring to the stack lives here."""

from __future__ import annotations

from datetime import UTC, datetime

from confluent_kafka import Consumer

from tidewater.cdc.topics import consumer_config
from tidewater.config import Settings
from tidewater.drain.drainer import DrainLimits, Replay
from tidewater.drain.lake import Lake

# The drain stops reading while the previous chunk is still being written, so librdkafka's 64 MiB prefetch
# queue fills; by default librdkafka then waits a whole second before fetching again, which tripled the
# drain's time (docs/benchmarks.md). Fetch again as soon as there is room.
FETCH_TUNING = {"fetch.queue.backoff.ms": 10}


def kafka_consumer(settings: Settings, group_id: str | None = None) -> Consumer:
    """A consumer from the Kafka connection's librdkafka extras; offsets only ever committed by hand."""
    overrides = {"group.id": group_id} if group_id else {}
    return Consumer(consumer_config(settings, **overrides, **{
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        **FETCH_TUNING,
    }))


def open_lake(settings: Settings) -> Lake:
    """The lake bucket through the Amazon provider's connection (endpoint from its extras)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return Lake(S3Hook(aws_conn_id=settings.lake_conn_id).get_conn(), settings.lake_bucket)


def limits(settings: Settings) -> DrainLimits:
    return DrainLimits(
        max_records_per_run=settings.drain_max_records_per_run,
        file_max_rows=settings.drain_file_max_rows,
        file_max_bytes=settings.drain_file_max_bytes,
        max_bad_share=settings.drain_max_bad_share,
    )


def discover_topics(consumer: Consumer, settings: Settings) -> list[str]:
    pattern = settings.topic_pattern
    return sorted(t for t in consumer.list_topics(timeout=30).topics if pattern.match(t))


class ParamError(ValueError):
    pass


def replay_request(params: dict, topic: str) -> Replay | None:
    """The replay a manual run asks of `topic` (params replay_topic + _from_timestamp or _from_offsets)."""
    if not params.get("replay_topic") or params["replay_topic"] != topic:
        return None
    timestamp, offsets = params.get("replay_from_timestamp"), params.get("replay_from_offsets")
    if bool(timestamp) == bool(offsets):
        raise ParamError(f"replay of {topic}: give exactly one of replay_from_timestamp "
                         "(ISO 8601, e.g. 2026-11-23T08:00:00Z) or replay_from_offsets (e.g. {\"0\": 1200})")
    if timestamp:
        try:
            moment = datetime.fromisoformat(timestamp)
        except ValueError as exc:
            raise ParamError(f"replay_from_timestamp={timestamp!r} is not an ISO 8601 time") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return Replay(timestamp_ms=int(moment.timestamp() * 1000))
    try:
        return Replay(offsets={int(partition): int(offset) for partition, offset in offsets.items()})
    except (AttributeError, ValueError) as exc:
        raise ParamError(f"replay_from_offsets={offsets!r}: expected {{partition: offset}}, e.g. {{\"0\": 1200}}") \
            from exc
