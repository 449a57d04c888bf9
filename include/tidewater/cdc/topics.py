"""Reading the CDC topics: which exist, how many events each holds, the newest event of each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from tidewater.config import ConfigError, Settings, get_connection


def consumer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """librdkafka settings of the Kafka connection as the Airflow provider's hook builds them (the extras, the
    callbacks its allowlist lets in, Amazon MSK IAM or Google Managed Kafka tokens), then `overrides`."""
    from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook

    class ConfigHook(KafkaBaseHook):
        def _get_client(self, config: dict[str, Any]) -> dict[str, Any]:
            return config  # the config the hook would make its client from

    get_connection(settings.kafka_conn_id)  # not defined: ConfigError names the variable to set
    try:
        config = dict(ConfigHook(settings.kafka_conn_id).get_conn)
    except ValueError as error:  # no bootstrap.servers, or a callback the allowlist does not name
        raise ConfigError(f"connection {settings.kafka_conn_id!r}: {error}") from None
    config.update(overrides)
    return config


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    events: int
    newest: dict[str, Any] | None


def summarize(settings: Settings, prefix: str | None = None) -> list[TopicSummary]:
    prefix = prefix or f"{settings.cdc_topic_prefix}."
    consumer = Consumer(consumer_config(settings, **{"group.id": "tidewater-peek", "enable.auto.commit": False}))
    try:
        topics = sorted(t for t in consumer.list_topics(timeout=10).topics if t.startswith(prefix))
        summaries = []
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            total, newest = 0, None
            for partition in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += high - low
                if high > low:
                    newest = _read_one(consumer, topic, partition, high - 1) or newest
            summaries.append(TopicSummary(topic, total, newest))
        return summaries
    finally:
        consumer.close()


def _read_one(consumer: Consumer, topic: str, partition: int, offset: int) -> dict[str, Any] | None:
    consumer.assign([TopicPartition(topic, partition, offset)])
    message = consumer.poll(10)
    consumer.unassign()
    if message is None or message.error() or message.value() is None:
        return None
    return json.loads(message.value()).get("payload")
