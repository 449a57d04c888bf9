"""Chunks become one Parquet file per change date, named by the offsets they hold."""

from __future__ import annotations

import json
from io import BytesIO

import pyarrow.parquet as pq

from tests.support.debezium import NOW, fixture, record
from tidewater.drain.encoder import ChunkEncoder


def test_a_chunk_spanning_two_change_dates_becomes_two_files():
    created = fixture("order_items", "c")
    envelope = json.loads(created["value"])
    envelope["payload"]["source"]["ts_ms"] = 1_774_742_400_000  # 2026-03-29T00:00:00Z
    other_day = json.dumps(envelope, separators=(",", ":")).encode()

    chunk = ChunkEncoder(NOW).encode([record(created, 7), record(created, 8, other_day), record(created, 9)])

    by_date = {f.dt: f for f in chunk.files}
    assert sorted(by_date) == ["2026-03-29", created_date(created)]
    assert (by_date["2026-03-29"].first_offset, by_date["2026-03-29"].last_offset) == (8, 8)
    today = by_date[created_date(created)]
    assert (today.first_offset, today.last_offset, today.rows) == (7, 9, 2)
    assert pq.read_table(BytesIO(today.body)).column("_kafka_offset").to_pylist() == [7, 9]


def created_date(item: dict) -> str:
    from datetime import UTC, datetime

    ts_ms = json.loads(item["value"])["payload"]["source"]["ts_ms"]
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d")
