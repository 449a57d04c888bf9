"""Debezium records as the decoder sees them, built from the records captured from the stack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Real records captured from the stack (tests/unit/fixtures/debezium_records.json).
FIXTURES = json.loads((Path(__file__).parents[1] / "unit" / "fixtures" / "debezium_records.json").read_text())
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class FakeRecord:
    """A Kafka record as the decoder sees it (confluent_kafka.Message cannot be built by hand)."""

    _topic: str
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _partition: int = 0
    _headers: list | None = None

    def topic(self): return self._topic
    def partition(self): return self._partition
    def offset(self): return self._offset
    def key(self): return self._key
    def value(self): return self._value
    def headers(self): return self._headers


def fixture(topic_suffix: str, op: str | None) -> dict:
    for item in FIXTURES:
        item_op = json.loads(item["value"])["payload"]["op"] if item["value"] else None
        if item["topic"].endswith(topic_suffix) and item_op == op:
            return item
    raise LookupError((topic_suffix, op))


def record(item: dict, offset: int | None = None, value: bytes | str | None = "same") -> FakeRecord:
    raw = item["value"].encode() if item["value"] is not None else None
    return FakeRecord(item["topic"], item["offset"] if offset is None else offset,
                      item["key"].encode() if item["key"] else None, raw if value == "same" else value)
