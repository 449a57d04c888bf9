"""No record blocks a partition: every record of the malformed corpus is quarantined with its reason, and the
good records around it land (fixtures/malformed_records.jsonl, made by fixtures/make_malformed_corpus.py)."""

from __future__ import annotations

import base64
import json
from io import BytesIO
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.debezium import NOW, FakeRecord, fixture
from tidewater.drain import debezium
from tidewater.drain.encoder import ChunkEncoder

CORPUS = [json.loads(line) for line in
          (Path(__file__).parent / "fixtures" / "malformed_records.jsonl").read_text().splitlines()]
TOPIC = "shop.shop.order_items"


def corpus_value(entry: dict) -> bytes:
    return entry["value_text"].encode("utf-8") if "value_text" in entry else base64.b64decode(entry["value_base64"])


def interleaved() -> tuple[list[FakeRecord], dict[int, dict]]:
    """A good change, a malformed record, a good change, …: (records, offset → corpus entry)."""
    good = fixture("order_items", "c")["value"].encode()
    records, bad = [], {}
    offset = 0
    for entry in CORPUS:
        records.append(FakeRecord(TOPIC, offset, None, good))
        records.append(FakeRecord(TOPIC, offset + 1, None, corpus_value(entry)))
        bad[offset + 1] = entry
        offset += 2
    records.append(FakeRecord(TOPIC, offset, None, good))
    return records, bad


def test_the_corpus_holds_at_least_fifty_kinds_of_malformed_record():
    assert len(CORPUS) >= 50
    assert len({entry["name"] for entry in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled decoder", "arrow path"])
def test_every_malformed_record_is_quarantined_with_its_reason_and_the_rest_lands(compiled, monkeypatch):
    if not compiled:
        monkeypatch.setattr(debezium, "_native", None)
    records, bad = interleaved()

    chunk = ChunkEncoder(NOW).encode(records)

    reasons = {q.record.offset(): q.error for q in chunk.quarantined}
    assert set(reasons) == set(bad), [bad[o]["name"] for o in set(bad) - set(reasons)]
    for offset, entry in bad.items():
        assert reasons[offset].strip(), entry["name"]
        assert entry["expect"].lower() in reasons[offset].lower(), (entry["name"], reasons[offset])
    landed = sorted(offset for file in chunk.files
                    for offset in pq.read_table(BytesIO(file.body)).column("_kafka_offset").to_pylist())
    assert landed == [record.offset() for record in records if record.offset() not in bad]


def test_quarantined_records_keep_their_exact_bytes():
    records, bad = interleaved()

    batch = debezium.decode(records, NOW)

    assert len(batch.quarantined) == len(bad)
    for quarantined in batch.quarantined:
        kept = quarantined.as_json()["value"]
        value = kept["text"].encode("utf-8") if "text" in kept else base64.b64decode(kept["base64"])
        assert value == quarantined.record.value()


def test_a_numeric_wider_than_38_digits_is_legitimate_and_lands_as_exact_text():
    digits = 10**99 + 12345  # numeric(100,2): 98 digits before the point
    value = json.loads(fixture("order_items", "c")["value"])
    for side in ("before", "after"):
        image = next(f for f in value["schema"]["fields"] if f["field"] == side)
        field = next(f for f in image["fields"] if f["field"] == "unit_price")
        field["parameters"] = {"scale": "2", "connect.decimal.precision": "100"}
    value["payload"]["after"]["unit_price"] = base64.b64encode(digits.to_bytes(42, "big", signed=True)).decode()

    batch = debezium.decode([FakeRecord(TOPIC, 0, None, json.dumps(value, separators=(",", ":")).encode())], NOW)

    assert batch.quarantined == []
    assert batch.table.column("unit_price").type == pa.string()
    assert batch.table.column("unit_price").to_pylist() == [f"{str(digits)[:-2]}.{str(digits)[-2:]}"]
