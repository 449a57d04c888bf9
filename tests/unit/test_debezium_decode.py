"""The Debezium → Arrow decoder on real records captured from the stack (tests/unit/fixtures)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest

from tests.support.debezium import NOW, FakeRecord, fixture, record
from tidewater.drain import debezium


def test_create_and_delete_take_the_right_row_image_with_exact_types():
    created, deleted = fixture("order_items", "c"), fixture("order_items", "d")

    batch = debezium.decode([record(created), record(deleted)], NOW)

    table = batch.table
    assert table.schema.field("unit_price").type == pa.decimal128(12, 2)
    assert table.schema.field("created_at").type == pa.timestamp("us", "UTC")
    assert table.schema.field("_source_ts").type == pa.timestamp("ms", "UTC")
    rows = table.to_pylist()
    after = json.loads(created["value"])["payload"]["after"]
    before = json.loads(deleted["value"])["payload"]["before"]
    assert [r["_op"] for r in rows] == ["c", "d"]
    assert rows[0]["order_item_id"] == after["order_item_id"]
    assert rows[1]["order_item_id"] == before["order_item_id"]  # deletes carry the old row
    assert rows[1]["quantity"] == before["quantity"]
    assert isinstance(rows[0]["unit_price"], Decimal)
    assert [r["_kafka_offset"] for r in rows] == [created["offset"], deleted["offset"]]
    assert rows[0]["_ingested_at"] == NOW


def test_tombstones_are_counted_and_skipped():
    tombstone = fixture("order_items", None)

    batch = debezium.decode([record(fixture("order_items", "d")), record(tombstone)], NOW)

    assert batch.tombstones == 1
    assert batch.table.num_rows == 1


def test_dates_and_json_keep_their_meaning():
    created = fixture("customers", "c")
    after = json.loads(created["value"])["payload"]["after"]

    row = debezium.decode([record(created)], NOW).table.to_pylist()[0]

    assert row["birth_date"] == (None if after["birth_date"] is None
                                 else date.fromordinal(date(1970, 1, 1).toordinal() + after["birth_date"]))
    assert json.loads(row["preferences"]) == json.loads(after["preferences"])


def test_unchanged_toast_placeholder_is_kept_for_the_warehouse():
    row = debezium.decode([record(fixture("products", "u"))], NOW).table.to_pylist()[0]

    assert row["description"] == "__debezium_unavailable_value"


def test_the_fast_and_the_general_path_give_the_same_table():
    created, deleted = fixture("order_items", "c"), fixture("order_items", "d")
    records = [record(created, 10), record(deleted, 11)]

    fast = debezium.decode(records, NOW).table  # one schema, no tombstone: the fast path
    general = debezium.decode([*records, record(fixture("order_items", None), 12)], NOW).table

    assert fast.equals(general)


def test_a_changed_schema_mid_batch_starts_a_new_group_and_columns_union():
    created = fixture("customers", "c")
    envelope = json.loads(created["value"])
    value_fields = envelope["schema"]["fields"][1]["fields"]  # after
    value_fields.append({"type": "string", "optional": True, "field": "loyalty_tier"})
    envelope["schema"]["fields"][0]["fields"] = value_fields  # before has the same struct
    envelope["payload"]["after"]["loyalty_tier"] = "gold"
    evolved = json.dumps(envelope, separators=(",", ":")).encode()

    table = debezium.decode([record(created, 1), record(created, 2, evolved), record(created, 3)], NOW).table

    assert table.column("loyalty_tier").to_pylist() == [None, "gold", None]
    assert table.column("_kafka_offset").to_pylist() == [1, 2, 3]


def test_a_record_with_a_wrong_type_is_quarantined_and_the_rest_decodes():
    created = fixture("order_items", "c")
    bad = created["value"].replace('"quantity":', '"quantity":"lots","x":', 1).encode()

    batch = debezium.decode([record(created, 1), record(created, 2, bad), record(created, 3)], NOW)

    assert batch.table.column("_kafka_offset").to_pylist() == [1, 3]
    [quarantined] = batch.quarantined
    assert quarantined.record.offset() == 2
    assert "does not match its schema" in quarantined.error
    assert quarantined.as_json()["value"]["text"].startswith('{"schema":')


@pytest.mark.parametrize(("value", "error"), [
    (b"\xff\xfe", "not JSON"),
    (b'{"schema":{"type":"string","optional":false},"payload":"x"}', "not a Debezium envelope"),
    (b'{"before":null,"after":null}', "not a Debezium change event"),
])
def test_poison_records_are_named(value, error):
    batch = debezium.decode([FakeRecord("t.shop.x", 5, None, value)], NOW)

    assert batch.table is None
    assert error in batch.quarantined[0].error


def test_decimals_beyond_int64_stay_exact():
    spec = debezium.column_type({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                                 "parameters": {"scale": "10", "connect.decimal.precision": "30"}})
    big = 12345678901234567890123456789
    encoded = pa.array([__import__("base64").b64encode(big.to_bytes(13, "big", signed=True)).decode(), None])

    # Every one of the 29 digits (Decimal arithmetic would round to 28).
    assert spec.convert(encoded).to_pylist() == [Decimal("1234567890123456789.0123456789"), None]
    assert spec.arrow_type == pa.decimal128(30, 10)


@pytest.mark.parametrize(("connect", "arrow"), [
    ({"type": "int64", "name": "io.debezium.time.MicroTimestamp"}, pa.timestamp("us")),
    ({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}, pa.timestamp("us", "UTC")),
    ({"type": "int32", "name": "io.debezium.time.Date"}, pa.date32()),
    ({"type": "int64", "name": "io.debezium.time.MicroTime"}, pa.time64("us")),
    ({"type": "string", "name": "io.debezium.data.Json"}, pa.string()),
    ({"type": "string", "name": "io.debezium.data.Uuid"}, pa.string()),
    ({"type": "int16"}, pa.int16()),
    ({"type": "float32"}, pa.float32()),
    ({"type": "bytes"}, pa.binary()),
    ({"type": "array", "items": {"type": "int32"}}, pa.list_(pa.int32())),
])
def test_connect_types_map_to_arrow(connect, arrow):
    assert debezium.column_type(connect).arrow_type == arrow
