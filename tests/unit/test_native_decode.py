"""The compiled decoder (native/tidewater_decode) gives exactly the Python decoder's tables, or declines.

Every case decodes the same records twice: through `debezium.decode` as the drain runs it (compiled
decoder first) and with the compiled decoder switched off (the Arrow path, the reference). Cases it
must convert assert that it did; cases it must decline assert that it declined and that the result
(rows, quarantine) is still the reference's.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
import tidewater_decode as native  # built by `make install`; a missing build fails here rather than skipping

from tests.support.debezium import FIXTURES, NOW, FakeRecord, fixture, record
from tidewater.drain import debezium


def decode_both(records: list[FakeRecord], monkeypatch: pytest.MonkeyPatch):
    """(drain's result, reference result, whether the compiled decoder produced the drain's result)."""
    values = [r.value() for r in records]
    used_native = debezium._decode_native(records, values, debezium.SchemaCache(), NOW) is not None
    drained = debezium.decode(records, NOW)
    with monkeypatch.context() as patch:
        patch.setattr(debezium, "_native", None)
        reference = debezium.decode(records, NOW)
    return drained, reference, used_native


def assert_same(drained: debezium.DecodedBatch, reference: debezium.DecodedBatch) -> None:
    if reference.table is None:
        assert drained.table is None
    else:
        assert drained.table.schema == reference.table.schema
        assert drained.table.equals(reference.table), (drained.table.to_pylist(), reference.table.to_pylist())
    assert drained.tombstones == reference.tombstones
    assert [(q.record.offset(), q.error) for q in drained.quarantined] == \
        [(q.record.offset(), q.error) for q in reference.quarantined]


def with_payload(item: dict, change) -> bytes:
    """The fixture's value with its payload changed by `change(payload)` (schema text untouched)."""
    envelope = json.loads(item["value"])
    change(envelope["payload"])
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def decimal_text(unscaled: int, length: int | None = None) -> str:
    length = length or max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


@pytest.mark.parametrize("topic", sorted({item["topic"] for item in FIXTURES}))
def test_every_captured_record_decodes_exactly(topic, monkeypatch):
    records = [record(item) for item in FIXTURES if item["topic"] == topic]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert used_native
    assert_same(drained, reference)


def test_values_across_their_ranges_decode_exactly(monkeypatch):
    created, deleted = fixture("order_items", "c"), fixture("order_items", "d")
    # unit_price is numeric(12,2): its extremes are ±(10^12 - 1) unscaled (larger ones are quarantined).
    prices = [0, 1, -1, 127, 128, -128, -129, 3400, 2**31, -(2**31) - 1, 10**12 - 1, -(10**12 - 1)]
    times = ["2026-11-23T18:13:07.149965Z", "2026-11-23T18:13:07Z", "2026-11-23T18:13:07.1Z",
             "1969-12-31T23:59:59.999999Z", "2024-02-29T23:59:59.000001+05:30", "2026-03-29T01:30:00-08:00",
             "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"]
    records, offset = [], 0

    def created_with(price: int, time: str, quantity: int):
        def change(payload):
            payload["after"].update(unit_price=decimal_text(price), discount_amount=decimal_text(-(price // 2), 9),
                                    created_at=time, quantity=quantity)
            payload["source"]["txId"] = None if quantity % 2 else quantity
        return change

    for index, price in enumerate(prices):
        for time in times:
            offset += 1
            records.append(record(created, offset, with_payload(created, created_with(price, time, index - 3))))
    records += [record(deleted, offset + 1), record(fixture("order_items", None), offset + 2)]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert used_native
    assert drained.table.num_rows == len(records) - 1
    assert_same(drained, reference)


def test_strings_nulls_and_escapes_decode_exactly(monkeypatch):
    updated = fixture("customers", "u")

    def change(payload):
        payload["after"].update(full_name='Zoë "Q" O\'Brien\\\n\t☃ 𝄞', phone=None, email="\u00e9\u0000x",
                                preferences=json.dumps({"nested": {"a": [1, 2]}}), birth_date=-719162,
                                marketing_opt_in=True)

    records = [record(updated, 1), record(updated, 2, with_payload(updated, change))]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert used_native
    assert_same(drained, reference)
    assert drained.table.column("full_name").to_pylist()[1] == 'Zoë "Q" O\'Brien\\\n\t☃ 𝄞'


def test_truncate_and_every_operation_decode_exactly(monkeypatch):
    created = fixture("order_items", "c")

    def as_op(op):
        def change(payload):
            payload["op"] = op
            if op == "t":
                payload["after"] = None
        return change

    records = [record(created, i, with_payload(created, as_op(op))) for i, op in enumerate("curt")]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert used_native
    assert_same(drained, reference)


def synthetic_envelope(fields: list[tuple[dict, object]], op: str = "c") -> bytes:
    """A Connect envelope whose row image has the given (Connect field schema, JSON value) columns."""
    image = {"type": "struct", "optional": True, "name": "t.shop.x.Value",
             "fields": [{**schema, "field": f"c{i}"} for i, (schema, _) in enumerate(fields)]}
    source = {"type": "struct", "optional": False, "name": "io.debezium.connector.postgresql.Source",
              "fields": [{"type": "int64", "optional": False, "field": "ts_ms"},
                         {"type": "int64", "optional": True, "field": "txId"},
                         {"type": "int64", "optional": True, "field": "lsn"}]}
    schema = {"type": "struct", "optional": False, "name": "t.shop.x.Envelope",
              "fields": [{**image, "field": "before"}, {**image, "field": "after"}, {**source, "field": "source"},
                         {"type": "string", "optional": False, "field": "op"}]}
    row = {f"c{i}": value for i, (_, value) in enumerate(fields)}
    payload = {"before": None, "after": row, "source": {"ts_ms": 1_795_457_587_243, "txId": 7, "lsn": 99},
               "op": op}
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()


EVERY_KIND = [
    ({"type": "int8"}, [-128, 127, None]),
    ({"type": "int16"}, [-32768, 32767, 0]),
    ({"type": "int32"}, [-(2**31), 2**31 - 1, None]),
    ({"type": "int64"}, [-(2**63), 2**63 - 1, 0]),
    ({"type": "float64"}, [0.1, -1e308, 5, 2**64 + 1, 1.5e-323, None]),
    ({"type": "boolean"}, [True, False, None]),
    ({"type": "bytes"}, ["", "AAE=", "/+8=", None]),
    ({"type": "int32", "name": "io.debezium.time.Date"}, [-719162, 0, 2932896]),
    ({"type": "int32", "name": "io.debezium.time.Time"}, [0, 86_399_999]),
    ({"type": "int64", "name": "io.debezium.time.MicroTime"}, [0, 86_399_999_999]),
    ({"type": "int64", "name": "io.debezium.time.Timestamp"}, [0, -1, 1_795_457_587_243]),
    ({"type": "int64", "name": "io.debezium.time.MicroTimestamp"}, [0, -1, 1_795_457_587_243_999]),
    ({"type": "int64", "name": "io.debezium.time.NanoTimestamp"}, [0, 1_795_457_587_243_999_000]),
    ({"type": "int64", "name": "io.debezium.time.MicroDuration"}, [-5, 3_600_000_000]),
    ({"type": "string", "name": "io.debezium.data.Uuid"}, ["0b8e8f5e-5a36-4bd4-9c6b-3b1c9f8a1f00", None]),
    ({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
      "parameters": {"scale": "0", "connect.decimal.precision": "38"}}, [decimal_text(-(2**63)), "", None]),
    ({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
      "parameters": {"scale": "4", "connect.decimal.precision": "38"}}, [decimal_text(10**17, 16), decimal_text(-5)]),
]


@pytest.mark.parametrize(("connect", "values"), EVERY_KIND, ids=lambda v: json.dumps(v)[:60])
def test_every_supported_connect_type_decodes_exactly(connect, values, monkeypatch):
    records = [FakeRecord("t.shop.x", i, None, synthetic_envelope([(connect, value)])) for i, value in
               enumerate(values)]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert used_native
    assert_same(drained, reference)


@pytest.mark.parametrize(("connect", "value"), [
    ({"type": "int8"}, 128),                      # out of range: the Arrow path quarantines it
    ({"type": "int64"}, 2**63),
    ({"type": "int64"}, 1.0),
    ({"type": "int32", "name": "io.debezium.time.Date"}, 2**31),
    ({"type": "string"}, 5),
    ({"type": "boolean"}, 1),
    ({"type": "bytes"}, "not base64!"),
    ({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
      "parameters": {"scale": "2", "connect.decimal.precision": "30"}}, decimal_text(2**63)),  # beyond int64
    ({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}, "AB"),
    ({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}, "2026-11-23T18:13:07.1234567Z"),
    ({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}, "2026-11-23T18:13:07"),
    ({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}, "2026-11-23 18:13:07Z"),
    ({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}, "2026-02-30T00:00:00Z"),
    ({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}, "infinity"),
])
def test_values_it_cannot_convert_exactly_are_left_to_the_arrow_path(connect, value, monkeypatch):
    good = {"int8": 1, "int64": 1, "int32": 1, "string": "x", "boolean": True,
            "bytes": decimal_text(1)}[connect["type"]]
    if connect.get("name") == "io.debezium.time.ZonedTimestamp":
        good = "2026-11-23T18:13:07Z"
    records = [FakeRecord("t.shop.x", 1, None, synthetic_envelope([(connect, good)])),
               FakeRecord("t.shop.x", 2, None, synthetic_envelope([(connect, value)]))]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert not used_native
    assert_same(drained, reference)


@pytest.mark.parametrize("change", [
    lambda p: p.update(op="x"),                                   # not a change event
    lambda p: p.update(after=None),                               # create without an after image
    lambda p: p["source"].update(lsn=None),                       # no position
    lambda p: p.update(before={**p["after"], "quantity": "two"}),  # unused image of the wrong type
    lambda p: p["after"].update(quantity=2**40),                   # int32 overflow
])
def test_unusable_events_are_left_to_the_arrow_path(change, monkeypatch):
    created = fixture("order_items", "c")
    records = [record(created, 1), record(created, 2, with_payload(created, change)), record(created, 3)]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert not used_native
    assert_same(drained, reference)


@pytest.mark.parametrize(("old", "new"), [
    ('"quantity":', '"quantity":1,"quantity":'),       # a column given twice
    ('"lsn":', '"lsn":1,"lsn":'),                      # a source field given twice
    ('"op":"c"', '"op":"c","op":"u"'),                 # an envelope field given twice
    ('"quantity":', '"quan\\u0074ity":'),            # an escaped key
    ('"op":"c"', '"op":"c"\n'),                       # a line break: not one row for Arrow's reader
])
def test_unusual_json_is_left_to_the_arrow_path(old, new, monkeypatch):
    created = fixture("order_items", "c")
    value = created["value"]
    head, payload = value.split('"payload":', 1)
    assert old in payload
    records = [record(created, 1), record(created, 2, (head + '"payload":' + payload.replace(old, new, 1)).encode())]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert not used_native
    assert_same(drained, reference)


def test_a_chunk_with_two_schemas_is_left_to_the_arrow_path(monkeypatch):
    records = [record(fixture("order_items", "c"), 1), record(fixture("customers", "c"), 2)]

    drained, reference, used_native = decode_both(records, monkeypatch)

    assert not used_native
    assert_same(drained, reference)


def test_it_reads_bytes_only_and_says_what_is_wrong():
    with pytest.raises(TypeError):
        native.decode_envelopes(["text"], [0], b"{", [])
    with pytest.raises(ValueError, match="unknown kind"):
        native.decode_envelopes([], [], b"{", [("a", "float16")])
    with pytest.raises(ValueError, match="1 values but 0 offsets"):
        native.decode_envelopes([None], [], b"{", [])


def test_ingestion_time_and_position_columns_match():
    created = fixture("order_items", "c")
    later = datetime(2027, 1, 1, tzinfo=UTC)

    table = debezium.decode([record(created, 41)], later).table

    assert table.column("_ingested_at").to_pylist() == [later]
    assert table.column("_kafka_partition").to_pylist() == [0]
    assert table.column("_kafka_topic").to_pylist() == [created["topic"]]


def test_an_incremental_snapshot_row_without_an_lsn_takes_the_one_before_it(monkeypatch):
    from tidewater.drain.encoder import fill_snapshot_lsns

    created = fixture("order_items", "c")

    def change(op, lsn, snapshot="false"):
        def edit(payload):
            payload["op"], payload["source"]["lsn"], payload["source"]["snapshot"] = op, lsn, snapshot
        return edit

    records = [record(created, 0, with_payload(created, change("r", None, "incremental"))),
               record(created, 1, with_payload(created, change("u", 500))),
               record(created, 2, with_payload(created, change("r", None, "incremental"))),
               record(created, 3, with_payload(created, change("u", None)))]  # only a snapshot row may lack one

    drained, reference, used_native = decode_both(records[:3], monkeypatch)

    assert used_native
    assert_same(drained, reference)
    assert drained.table.column("_lsn").to_pylist() == [None, 500, None]
    asked = []
    filled = fill_snapshot_lsns(drained.table, lambda: asked.append(1) or 420)
    assert filled.column("_lsn").to_pylist() == [420, 500, 500] and asked == [1]
    assert [q.error for q in debezium.decode(records, NOW).quarantined] == ["no source.lsn"]
