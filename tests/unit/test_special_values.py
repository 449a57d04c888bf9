"""Every value PostgreSQL accepts decodes exactly, as Debezium 3.6 writes it (the forms below were read from
the stack's connector: decimal.handling.mode=string with propagated NUMERIC types, time.precision.mode=adaptive).
"""

from __future__ import annotations

import json
from io import BytesIO

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.support.debezium import NOW, FakeRecord
from tidewater.drain import debezium


def numeric(name: str, length: int, scale: int) -> dict:
    return {"type": "string", "optional": True, "field": name, "parameters": {
        "__debezium.source.column.type": "NUMERIC", "__debezium.source.column.length": str(length),
        "__debezium.source.column.scale": str(scale), "__debezium.source.column.name": name}}


FIELDS = [
    {"type": "int32", "optional": False, "field": "id"},
    numeric("n", 131089, 0),  # unconstrained NUMERIC
    numeric("n12", 12, 2),
    numeric("n100", 100, 2),
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "ts"},
    {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1, "field": "tstz"},
    {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1, "field": "d"},
    {"type": "double", "optional": True, "field": "f"},
    {"type": "float", "optional": True, "field": "f4"},
]
SCHEMA = {"type": "struct", "name": "shop.shop.probe.Envelope", "fields": [
    {"type": "struct", "optional": True, "field": "before", "fields": FIELDS},
    {"type": "struct", "optional": True, "field": "after", "fields": FIELDS},
    {"type": "struct", "optional": False, "field": "source", "fields": [
        {"type": "int64", "field": "ts_ms"}, {"type": "int64", "optional": True, "field": "lsn"},
        {"type": "int64", "optional": True, "field": "txId"}]},
    {"type": "string", "optional": False, "field": "op"},
]}
# What the connector wrote for each row PostgreSQL holds, and what DuckDB must read back from the lake.
ROWS = [
    ({"id": 1, "n": "NAN", "n12": "NAN", "n100": "NAN", "ts": 9223372036825200000, "tstz": "infinity",
      "d": -2147472692, "f": "NaN", "f4": "NaN"},
     (1, "NaN", None, "NaN", "NaN", "infinity", "infinity", "infinity", "nan", "nan")),
    ({"id": 2, "n": "NEGATIVE_INFINITY", "n12": "-12.50", "n100": "-1.00", "ts": -9223372036832400000,
      "tstz": "-infinity", "d": -2147472691, "f": "Infinity", "f4": "-Infinity"},
     (2, "-Infinity", "-12.50", None, "-1.00", "-infinity", "-infinity", "-infinity", "inf", "-inf")),
    ({"id": 3, "n": "POSITIVE_INFINITY", "n12": "12.50", "n100": "9" * 98 + ".99", "ts": 253402300800000000,
      "tstz": "-0043-03-15T00:00:00.000000Z", "d": 2145042905, "f": 1.5, "f4": 2.5},
     (3, "Infinity", "12.50", None, "9" * 98 + ".99", "10000-01-01 00:00:00", "0044-03-15 (BC) 00:00:00+00",
      "5874897-12-31", "1.5", "2.5")),
    ({"id": 4, "n": "1.23456789012345678901234567890123456789012345", "n12": "0.00", "n100": "-1.00",
      "ts": 915184800000000, "tstz": "+10000-01-01T08:00:00.5Z", "d": -2440550, "f": -0.0, "f4": 1e30},
     (4, "1.23456789012345678901234567890123456789012345", "0.00", None, "-1.00", "1999-01-01 10:00:00",
      "10000-01-01 08:00:00.5+00", "4713-01-01 (BC)", "-0.0", "1e+30")),
]


def record(offset: int, after: dict) -> FakeRecord:
    payload = {"before": None, "after": after, "source": {"ts_ms": 1795457587243, "lsn": 100 + offset, "txId": 7},
               "op": "c"}
    return FakeRecord("shop.shop.probe", offset, None,
                      json.dumps({"schema": SCHEMA, "payload": payload}, separators=(",", ":")).encode())


def lake_text(records: list[FakeRecord]) -> list[tuple]:
    batch = debezium.decode(records, NOW)
    assert batch.quarantined == []
    buffer = BytesIO()
    pq.write_table(batch.table, buffer)
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    return con.execute(
        "select id, n, n12::varchar, n12__special, n100, ts::varchar, tstz::varchar, d::varchar, "
        "f::varchar, f4::varchar from read_parquet(?) order by id",
        [_file(buffer)]).fetchall()


def _file(buffer: BytesIO) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as file:
        file.write(buffer.getvalue())
    return file.name


@pytest.mark.parametrize("row", range(len(ROWS)))
def test_each_special_value_reads_back_from_the_lake_exactly(row):
    after, expected = ROWS[row]
    got = lake_text([record(0, after)])[0]

    assert got[:8] == expected[:8]
    assert [float(value) for value in got[8:]] == pytest.approx([float(value) for value in expected[8:]],
                                                                nan_ok=True)


def test_special_values_beside_ordinary_ones_decode_in_one_batch():
    got = lake_text([record(offset, after) for offset, (after, _) in enumerate(ROWS)])

    assert [row[:8] for row in got] == [expected[:8] for _, expected in ROWS]


def test_numeric_columns_are_typed_with_a_special_text_beside_them():
    schema = debezium.RowSchema.from_envelope(SCHEMA)

    assert str(schema.columns["n12"].arrow_type) == "decimal128(12, 2)" and schema.columns["n12"].special
    assert str(schema.columns["n100"].arrow_type) == "string" and not schema.columns["n100"].special
    assert str(schema.columns["n"].arrow_type) == "string"


def test_a_string_decimal_beyond_its_precision_is_quarantined_not_rounded():
    after = dict(ROWS[0][0], n12="100000000000000000.00")

    batch = debezium.decode([record(0, after), record(1, ROWS[1][0])], NOW)

    assert [q.record.offset() for q in batch.quarantined] == [0]
    assert "precision" in batch.quarantined[0].error
    assert batch.table.column("id").to_pylist() == [2]


def test_millisecond_timestamps_and_intervals_keep_infinity_and_months():
    fields = [{"type": "int32", "optional": False, "field": "id"},
              {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "version": 1, "field": "t0"},
              {"type": "string", "optional": True, "name": "io.debezium.time.Interval", "version": 1, "field": "iv"}]
    schema = json.loads(json.dumps(SCHEMA))
    for side in schema["fields"][:2]:
        side["fields"] = fields
    rows = [{"id": 1, "t0": 9223372036825200, "iv": "P0Y1M2DT0H0M3S"},  # as the stack's connector wrote them
            {"id": 2, "t0": -9223372036832400, "iv": "P-5Y0M0DT0H0M0S"},
            {"id": 3, "t0": 1767261601123, "iv": None}]
    records = [FakeRecord("shop.shop.probe", n, None, json.dumps(
        {"schema": schema, "payload": {"before": None, "after": row, "source": {"ts_ms": 1, "lsn": n, "txId": 1},
                                       "op": "c"}}, separators=(",", ":")).encode()) for n, row in enumerate(rows)]
    batch = debezium.decode(records, NOW)
    buffer = BytesIO()
    pq.write_table(batch.table, buffer)

    assert duckdb.sql(f"select t0::varchar, iv from read_parquet('{_file(buffer)}') order by id").fetchall() == [
        ("infinity", "P0Y1M2DT0H0M3S"), ("-infinity", "P-5Y0M0DT0H0M0S"), ("2026-01-01 10:00:01.123", None)]
