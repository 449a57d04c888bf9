"""Debezium JSON envelopes → Arrow tables, one row per change.

Speed comes from never parsing a record's Connect schema more than once. The JsonConverter writes
``{"schema":<schema>,"payload":<payload>}``; records of one table version carry byte-identical schema
text, so a record whose bytes start with the cached ``{"schema":…,"payload":`` prefix is sliced to its
payload without parsing, and a whole run of such payloads is parsed by Arrow's C++ JSON reader in one
call, with an explicit schema derived from the Connect schema (exact types, no inference). A record
whose schema text differs starts a new group (schema evolution). A group that fails to parse is parsed
record by record, so one bad record is quarantined and the rest still land.

Faster still, a chunk whose records all share one schema goes first to the compiled decoder
(``tidewater_decode``, built from native/tidewater_decode by ``make install``): it slices, parses and
converts every payload in one pass without the GIL and hands back Arrow column buffers. It declines
(None) any chunk it cannot convert exactly as the code below would; those chunks take the Arrow path.

Row layout: the row image (``after``, or ``before`` for deletes), converted to the Connect types
(Decimal → decimal128(p,s), Date → date32, MicroTimestamp → timestamp[us], ZonedTimestamp →
timestamp[us, UTC], …), plus ``_op, _source_ts, _lsn, _tx_id, _kafka_topic, _kafka_partition,
_kafka_offset, _ingested_at``. Tombstones (null values) are counted and skipped.

Every value PostgreSQL accepts lands exactly (docs/lake.md, "Special values"):
- NUMERIC(p,s) with p <= 38 (Debezium's string decimals, or its binary ones) → decimal128(p,s), plus a text
  column ``<name>__special`` holding 'NaN', 'Infinity' or '-Infinity' where the typed value is null;
- NUMERIC wider than 38 digits, or without a declared precision → its exact text, in the column itself;
- ±infinity timestamps, timestamptz and dates → DuckDB's own infinities (int64 ±(2^63-1) µs, int32
  ±(2^31-1) days), which DuckDB reads back as 'infinity' / '-infinity'.
A value that does not fit its declared type (precision, scale, range) quarantines its record, never rounds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from io import BytesIO
from itertools import repeat
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

try:
    import tidewater_decode as _native
except ImportError:  # not built: decoding stays exact, only slower (see ChunkEncoder's warning)
    _native = None

OPERATIONS = ("c", "u", "d", "r", "t")
META_COLUMNS = ("_op", "_source_ts", "_lsn", "_tx_id", "_kafka_topic", "_kafka_partition", "_kafka_offset",
                "_ingested_at")
_SCHEMA_START = b'{"schema":'
_PAYLOAD_KEY = b',"payload":'
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
SPECIAL_SUFFIX = "__special"  # the text column beside a NUMERIC column, for NaN and ±Infinity
SPECIAL_NUMERICS = ("NaN", "Infinity", "-Infinity")
MAX_DECIMAL128_PRECISION = 38
# DuckDB's infinite timestamps and dates (what it reads back from Parquet as 'infinity' / '-infinity').
INFINITE_MICROS = 2**63 - 1
INFINITE_DAYS = 2**31 - 1
# What Debezium 3.6 emits for PostgreSQL's infinities (seen on the stack): PgJDBC's sentinels, unscaled,
# for timestamps; those, divided into days and wrapped to int32, for dates; plain words for timestamptz.
_INFINITE_TIMESTAMP_SOURCE = {9223372036825200000: INFINITE_MICROS, -9223372036832400000: -INFINITE_MICROS}
_INFINITE_MILLIS_SOURCE = {9223372036825200: INFINITE_MICROS, -9223372036832400: -INFINITE_MICROS}
_INFINITE_DATE_SOURCE = {-2147472692: INFINITE_DAYS, -2147472691: -INFINITE_DAYS}
_INFINITE_ZONED_SOURCE = {"infinity": INFINITE_MICROS, "-infinity": -INFINITE_MICROS}
# decimal.handling.mode=string writes NUMERIC's special values as Java names; the lake keeps PostgreSQL's.
_SPECIAL_NUMERIC_SOURCE = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}
_ISO_TIMESTAMP = re.compile(r"([+-]?\d{4,})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
                            r"(Z|[+-]\d{2}:\d{2})")


class Record(Protocol):
    """What the decoder needs of a Kafka message (confluent_kafka.Message has it)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes | None]] | None: ...


class DecodeError(ValueError):
    """A record that is not a usable Debezium change event."""


# ---------------------------------------------------------------------------------------------
# Connect schema → Arrow types

Converter = Callable[[pa.Array], pa.Array]


@dataclass(frozen=True)
class ColumnType:
    json_type: pa.DataType  # how the JSON value is parsed
    arrow_type: pa.DataType  # what the column holds in Parquet
    convert: Converter | None = None  # json_type array → arrow_type array; None: a plain cast
    native: str | None = None  # the compiled decoder's name for this conversion; None: it has none
    native_type: pa.DataType | None = None  # what the compiled decoder hands back, if not arrow_type
    special: bool = False  # NUMERIC: NaN and ±Infinity go to the <name>__special text column


def _exact_decimal(unscaled: int, scale: int) -> Decimal:
    """unscaled * 10^-scale, exactly (Decimal arithmetic would round to its context's 28 digits)."""
    return Decimal((int(unscaled < 0), tuple(int(d) for d in str(abs(unscaled))), -scale))


def _decimal_text(unscaled: int, scale: int) -> str:
    """PostgreSQL's text form of a NUMERIC: plain digits, `scale` of them after the point."""
    return format(_exact_decimal(unscaled, scale), "f")


def _unscaled(text: str) -> int:
    """A Connect Decimal's unscaled value; binascii.Error for anything but strict base64."""
    return int.from_bytes(binascii.a2b_base64(text, strict_mode=True), "big", signed=True)


def _checked(array: pa.Array) -> pa.Array:
    """`array`, after a full validation: a decimal that does not fit its precision raises ArrowInvalid."""
    array.validate(full=True)
    return array


def _decimal_params(field_schema: dict[str, Any], precision_key: str, scale_key: str,
                    default_precision: int | None) -> tuple[int | None, int]:
    """(precision or None when undeclared, scale) of a decimal field; DecodeError when they make no sense."""
    params = field_schema.get("parameters") or {}
    try:
        scale = int(params.get(scale_key, 0))
        raw_precision = params.get(precision_key)
        precision = default_precision if raw_precision is None else int(raw_precision)
    except (TypeError, ValueError):
        raise DecodeError(f"decimal field {field_schema.get('field')!r} has unusable parameters {params!r}") from None
    if precision is not None and (precision < 1 or not -precision <= scale <= precision):
        raise DecodeError(f"decimal field {field_schema.get('field')!r}: scale {scale} does not fit precision "
                          f"{precision}")
    return precision, scale


def _binary_decimal(precision: int | None, scale: int) -> ColumnType:
    """Connect Decimal: base64 of the unscaled value's big-endian two's complement bytes.

    Up to 38 digits: decimal128(p,s) (and an empty <name>__special column: this mode cannot carry NaN);
    wider or undeclared: exact text.
    """
    if precision is None or precision > MAX_DECIMAL128_PRECISION or scale < 0:
        def to_text(array: pa.Array) -> pa.Array:
            return pa.array([None if text is None else _decimal_text(
                _unscaled(text), scale) for text in array.to_pylist()],
                pa.string())
        return ColumnType(pa.string(), pa.string(), to_text)
    arrow_type = pa.decimal128(precision, scale)

    def convert(array: pa.Array) -> pa.Array:
        unscaled = [
            None if text is None else _unscaled(text)
            for text in array.to_pylist()
        ]
        if all(v is None or _INT64_MIN <= v <= _INT64_MAX for v in unscaled):
            # Same 128-bit storage, read with the column's scale: exact and vectorised.
            storage = pa.array(unscaled, pa.int64()).cast(pa.decimal128(38, 0))
            return _checked(pa.Array.from_buffers(arrow_type, len(storage), storage.buffers(),
                                                  null_count=storage.null_count))
        return pa.array([None if v is None else _exact_decimal(v, scale) for v in unscaled], arrow_type)

    return ColumnType(pa.string(), arrow_type, convert, "decimal_base64", special=True)


def _replaced(array: pa.Array, replacements: dict) -> pa.Array:
    """`array` with each key of `replacements` swapped for its value (vectorised; same type)."""
    for source, target in replacements.items():
        array = pc.if_else(pc.equal(array, pa.scalar(source, array.type)), pa.scalar(target, array.type), array)
    return array


def _sentinels(storage: pa.DataType, arrow_type: pa.DataType, replacements: dict[int, int]) -> Converter:
    """Integers with Debezium's infinity sentinels → arrow_type holding DuckDB's infinities."""
    def convert(array: pa.Array) -> pa.Array:
        return _replaced(array.cast(storage), replacements).cast(arrow_type)
    return convert


def _millis_to_micros(array: pa.Array) -> pa.Array:
    """Debezium's Timestamp (ms, infinities as PgJDBC's sentinels / 1000) → timestamp[us] with DuckDB's."""
    millis = array.cast(pa.int64())
    infinite = pc.is_in(millis, pa.array(list(_INFINITE_MILLIS_SOURCE), pa.int64()))
    micros = pc.multiply_checked(pc.if_else(infinite, pa.scalar(0, pa.int64()), millis), 1000)
    micros = pc.if_else(infinite, _replaced(millis, _INFINITE_MILLIS_SOURCE), micros)
    return micros.cast(pa.timestamp("us"))


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (astronomical years: 0 is 1 BC)."""
    year -= month <= 2
    era = year // 400  # floor division: no correction for negative years needed
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _zoned_micros(text: str) -> int:
    """µs since the epoch of one of Debezium's ZonedTimestamp texts, any year PostgreSQL allows."""
    if text in _INFINITE_ZONED_SOURCE:
        return _INFINITE_ZONED_SOURCE[text]
    match = _ISO_TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp with a zone: {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        raise ValueError(f"not a valid timestamp: {text!r}")
    zone = match[8]
    offset_s = 0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_s
    micros = seconds * 1_000_000 + int((match[7] or "").ljust(6, "0"))
    if not -INFINITE_MICROS < micros < INFINITE_MICROS:
        raise ValueError(f"timestamp {text!r} is beyond what the lake can hold")
    return micros


def _zoned_timestamps(array: pa.Array) -> pa.Array:
    """ZonedTimestamp texts → timestamp[us, UTC]: Arrow's parser, else each value exactly (±infinity, BC
    and five-digit years)."""
    arrow_type = pa.timestamp("us", "UTC")
    try:
        return array.cast(arrow_type)
    except pa.ArrowInvalid:
        micros = [None if text is None else _zoned_micros(text) for text in array.to_pylist()]
        return pa.array(micros, pa.int64()).cast(arrow_type)


def _special_numeric_text(array: pa.Array) -> pa.Array:
    return _replaced(array, _SPECIAL_NUMERIC_SOURCE)


def _text_decimal(precision: int | None, scale: int) -> ColumnType:
    """Debezium's string decimals (decimal.handling.mode=string): '12.50', 'NaN', 'Infinity', '-Infinity'.

    Up to 38 digits: decimal128(p,s) beside the <name>__special text column; wider or undeclared: the
    text itself, as PostgreSQL wrote it.
    """
    if precision is None or precision > MAX_DECIMAL128_PRECISION or scale < 0:
        return ColumnType(pa.string(), pa.string(), _special_numeric_text, "string", native_type=pa.string())
    arrow_type = pa.decimal128(precision, scale)

    def convert(array: pa.Array) -> pa.Array:
        # Arrow's cast refuses a value that would lose digits or does not fit the precision.
        return array.cast(arrow_type)

    return ColumnType(pa.string(), arrow_type, convert, "string", native_type=pa.string(), special=True)


_NULL_TEXT = pa.scalar(None, pa.string())


def lake_columns(name: str, spec: ColumnType, array: pa.Array, converted: bool = False) -> dict[str, pa.Array]:
    """The lake columns of one source column from its parsed values (`converted`: already arrow_type).

    A NUMERIC gives two: the typed value (null where the value is NaN or ±Infinity) and its
    <name>__special text.
    """
    special = None
    if spec.special:
        if converted:
            special = pa.nulls(len(array), pa.string())
        else:
            array = _special_numeric_text(array)
            is_special = pc.fill_null(pc.is_in(array, pa.array(SPECIAL_NUMERICS)), False)
            special = pc.if_else(is_special, array, _NULL_TEXT)
            array = pc.if_else(is_special, _NULL_TEXT, array)
    if not converted:
        array = _convert(array, spec)
    return {name: array} if special is None else {name: array, name + SPECIAL_SUFFIX: special}


def _binary(array: pa.Array) -> pa.Array:
    return pa.array([None if text is None else binascii.a2b_base64(text, strict_mode=True)
                     for text in array.to_pylist()], pa.binary())


def _variable_scale_decimal(array: pa.Array) -> pa.Array:
    """io.debezium.data.VariableScaleDecimal (NUMERIC without a declared scale) → exact text."""
    out = []
    for item in array.to_pylist():
        if item is None or item.get("value") is None:
            out.append(None)
        else:
            unscaled = _unscaled(item["value"])
            out.append(_decimal_text(unscaled, int(item["scale"])))
    return pa.array(out, pa.string())


_PRIMITIVES: dict[str, tuple[pa.DataType, pa.DataType]] = {
    "int8": (pa.int64(), pa.int8()),
    "int16": (pa.int64(), pa.int16()),
    "int32": (pa.int64(), pa.int32()),
    "int64": (pa.int64(), pa.int64()),
    "float32": (pa.float64(), pa.float32()),
    "float64": (pa.float64(), pa.float64()),
    # What Kafka's JsonConverter calls FLOAT32 and FLOAT64 in a record's schema.
    "float": (pa.float64(), pa.float32()),
    "double": (pa.float64(), pa.float64()),
    "boolean": (pa.bool_(), pa.bool_()),
    "string": (pa.string(), pa.string()),
}

# The compiled decoder's conversions of the primitives (float32 has none: it stays on the Arrow path).
_NATIVE_PRIMITIVES = {"int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "float64": "float64",
                      "double": "float64",
                      "boolean": "boolean", "string": "string"}

# Debezium's column.propagate.source.type / datatype.propagate.source.type parameters.
SOURCE_TYPE = "__debezium.source.column.type"
SOURCE_LENGTH = "__debezium.source.column.length"
SOURCE_SCALE = "__debezium.source.column.scale"
_SOURCE_NUMERIC_TYPES = {"NUMERIC", "DECIMAL"}

# Logical types Debezium and Connect put in a field's "name".
_LOGICAL: dict[str, tuple[pa.DataType, pa.DataType]] = {
    "io.debezium.time.Date": (pa.int64(), pa.date32()),
    "org.apache.kafka.connect.data.Date": (pa.int64(), pa.date32()),
    "io.debezium.time.Timestamp": (pa.int64(), pa.timestamp("ms")),
    "org.apache.kafka.connect.data.Timestamp": (pa.int64(), pa.timestamp("ms")),
    "io.debezium.time.MicroTimestamp": (pa.int64(), pa.timestamp("us")),
    "io.debezium.time.NanoTimestamp": (pa.int64(), pa.timestamp("ns")),
    "io.debezium.time.ZonedTimestamp": (pa.string(), pa.timestamp("us", "UTC")),
    "io.debezium.time.Time": (pa.int64(), pa.time32("ms")),
    "org.apache.kafka.connect.data.Time": (pa.int64(), pa.time32("ms")),
    "io.debezium.time.MicroTime": (pa.int64(), pa.time64("us")),
    "io.debezium.time.NanoTime": (pa.int64(), pa.time64("ns")),
    "io.debezium.time.MicroDuration": (pa.int64(), pa.duration("us")),
}


def column_type(field_schema: dict[str, Any]) -> ColumnType:
    """The parse and storage types of one Connect field; DecodeError for types it cannot store."""
    if not isinstance(field_schema, dict):
        raise DecodeError(f"a Connect field schema must be an object, got {type(field_schema).__name__}")
    kind, name = field_schema.get("type"), field_schema.get("name")
    params = field_schema.get("parameters") or {}
    if name == "org.apache.kafka.connect.data.Decimal":
        # Connect's default precision when none is given is unbounded: kept as exact text.
        return _binary_decimal(*_decimal_params(field_schema, "connect.decimal.precision", "scale", None))
    if kind == "string" and isinstance(params, dict) and \
            str(params.get(SOURCE_TYPE, "")).upper() in _SOURCE_NUMERIC_TYPES:
        precision, scale = _decimal_params(field_schema, SOURCE_LENGTH, SOURCE_SCALE, None)
        # An unconstrained NUMERIC comes as length 131089, scale 0: wider than 38 digits, so exact text.
        return _text_decimal(precision, scale)
    if name == "io.debezium.data.VariableScaleDecimal":
        return ColumnType(pa.struct([("scale", pa.int64()), ("value", pa.string())]), pa.string(),
                          _variable_scale_decimal)
    if name in _LOGICAL:
        json_type, arrow_type = _LOGICAL[name]
        if pa.types.is_date32(arrow_type):
            return ColumnType(json_type, arrow_type, _sentinels(pa.int32(), arrow_type, _INFINITE_DATE_SOURCE),
                              "int32", native_type=pa.int32())
        if pa.types.is_time32(arrow_type):
            return ColumnType(json_type, arrow_type, lambda a, t=arrow_type: a.cast(pa.int32()).cast(t), "int32")
        if name == "io.debezium.time.ZonedTimestamp":
            return ColumnType(json_type, arrow_type, _zoned_timestamps, "zoned_timestamp_us")
        if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ms":
            # Held as µs: DuckDB reads infinity only there (a millisecond infinity would overflow).
            return ColumnType(json_type, pa.timestamp("us"), _millis_to_micros, "int64", native_type=pa.int64())
        if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "us":
            return ColumnType(json_type, arrow_type, _sentinels(pa.int64(), arrow_type, _INFINITE_TIMESTAMP_SOURCE),
                              "int64", native_type=pa.int64())
        return ColumnType(json_type, arrow_type, None, "int64")
    if kind in _PRIMITIVES:
        json_type, arrow_type = _PRIMITIVES[kind]
        return ColumnType(json_type, arrow_type, None, _NATIVE_PRIMITIVES.get(kind))
    if kind == "bytes":
        return ColumnType(pa.string(), pa.binary(), _binary, "binary_base64")
    if kind == "array":
        item = column_type(field_schema["items"])
        if item.convert is not None:
            raise DecodeError(f"arrays of {field_schema['items'].get('name') or field_schema['items']['type']} "
                              "are not supported")
        return ColumnType(pa.list_(item.json_type), pa.list_(item.arrow_type), None)
    if kind == "struct" and "fields" in field_schema:
        children = {f["field"]: column_type(f) for f in field_schema["fields"]}
        if any(child.convert is not None for child in children.values()):
            raise DecodeError(f"struct {name or ''} with logical-type fields is not supported")
        return ColumnType(pa.struct([(n, c.json_type) for n, c in children.items()]),
                          pa.struct([(n, c.arrow_type) for n, c in children.items()]), None)
    raise DecodeError(f"Connect type {kind!r} ({name or 'no logical name'}) is not supported")


def _convert(array: pa.Array, spec: ColumnType) -> pa.Array:
    if spec.convert is not None:
        return spec.convert(array)
    return array if array.type == spec.arrow_type else array.cast(spec.arrow_type)


@dataclass(frozen=True)
class RowSchema:
    """The decoder's view of one version of a table's Connect envelope schema."""

    columns: dict[str, ColumnType]
    parse_schema: pa.Schema | None  # None: records without a Connect schema, types inferred

    @property
    def native_columns(self) -> list[tuple[str, str]] | None:
        """(name, conversion) of every column for the compiled decoder; None if one has no conversion."""
        if self.parse_schema is None or any(spec.native is None for spec in self.columns.values()):
            return None
        return [(name, spec.native) for name, spec in self.columns.items()]  # type: ignore[misc]

    @classmethod
    def from_envelope(cls, envelope_schema: dict[str, Any] | None) -> RowSchema:
        if envelope_schema is None:
            return cls({}, None)
        try:
            fields = {f["field"]: f for f in envelope_schema.get("fields", [])}
            if "op" not in fields or not ({"before", "after"} <= fields.keys()):
                raise DecodeError(f"not a Debezium envelope schema ({envelope_schema.get('name')})")
            value_schema = fields["after"] if fields["after"].get("fields") else fields["before"]
            columns = {f["field"]: column_type(f) for f in value_schema.get("fields", [])}
        except (KeyError, TypeError, AttributeError) as exc:
            raise DecodeError(f"unusable Connect schema: {type(exc).__name__} {exc}") from None
        image = pa.struct([(name, spec.json_type) for name, spec in columns.items()])
        return cls(columns, _parse_schema(image))


def _parse_schema(image: pa.DataType | None) -> pa.Schema:
    source = pa.struct([("ts_ms", pa.int64()), ("lsn", pa.int64()), ("txId", pa.int64())])
    fields = [("op", pa.string()), ("source", source)]
    if image is not None:
        fields = [("before", image), ("after", image), *fields]
    return pa.schema(fields)


# ---------------------------------------------------------------------------------------------
# records → groups of payloads sharing one schema


@dataclass
class Quarantined:
    record: Record
    error: str

    def as_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "topic": record.topic(),
            "partition": record.partition(),
            "offset": record.offset(),
            "key": _text_or_base64(record.key()),
            "value": _text_or_base64(record.value()),
            "headers": [[name, _text_or_base64(value)] for name, value in (record.headers() or [])],
            "error": self.error,
        }


def _text_or_base64(data: bytes | None) -> dict[str, str] | None:
    if data is None:
        return None
    try:
        return {"text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


@dataclass
class _Group:
    schema: RowSchema
    records: list[Record] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)


class SchemaCache:
    """Maps a record's schema text (the bytes before its payload) to a RowSchema, parsing each once."""

    def __init__(self) -> None:
        self._by_prefix: dict[bytes, RowSchema] = {}
        self._last_prefix: bytes | None = None
        self._last_schema: RowSchema | None = None

    def split(self, value: bytes) -> tuple[RowSchema, bytes]:
        """(schema, payload bytes) of one record value; DecodeError when it is not an envelope."""
        last = self._last_prefix
        if last is not None and value.startswith(last) and value.endswith(b"}"):
            return self._last_schema, value[len(last):-1]  # type: ignore[return-value]
        if not value.startswith(_SCHEMA_START):
            if value[:1] == b"{":
                return self._remember(b"", RowSchema.from_envelope(None)), value  # schemas disabled
            raise DecodeError("not JSON")
        try:
            schema, end = json.JSONDecoder().raw_decode(value.decode("utf-8"), len(_SCHEMA_START))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DecodeError(f"not JSON: {exc}") from None
        except RecursionError:
            raise DecodeError("schema nested too deeply") from None
        # Offsets above count characters; the prefix must be cut in bytes.
        prefix_text = value.decode("utf-8")[:end] + _PAYLOAD_KEY.decode()
        prefix = prefix_text.encode("utf-8")
        if not value.startswith(prefix) or not value.endswith(b"}"):
            raise DecodeError("not a Connect JSON envelope (no payload after the schema)")
        row_schema = self._by_prefix.get(prefix)
        if row_schema is None:
            row_schema = RowSchema.from_envelope(schema if isinstance(schema, dict) else None)
        return self._remember(prefix, row_schema), value[len(prefix):-1]

    def envelope_prefix(self, value: bytes) -> tuple[RowSchema, bytes] | None:
        """(schema, the bytes before the payload) of a Connect JSON envelope; None for anything else."""
        try:
            schema, _ = self.split(value)
        except DecodeError:
            return None
        if not self._last_prefix or self._last_schema is not schema:
            return None
        return schema, self._last_prefix

    def one_schema_group(self, records: list[Record], values: list[bytes]) -> _Group | None:
        """All records as one group when they share the schema of the first (the usual case), else None.

        The check and the slicing run as C-level map/list operations: no method calls per record.
        """
        try:
            schema, _ = self.split(values[0])
        except DecodeError:
            return None
        prefix = self._last_prefix
        if not prefix or self._last_schema is not schema:
            return None
        if not all(map(bytes.startswith, values, repeat(prefix))) or not all(map(bytes.endswith, values,
                                                                               repeat(b"}"))):
            return None
        cut = len(prefix)
        return _Group(schema, records, [value[cut:-1] for value in values])

    def _remember(self, prefix: bytes, schema: RowSchema) -> RowSchema:
        self._by_prefix[prefix] = schema
        if prefix:
            self._last_prefix, self._last_schema = prefix, schema
        return schema


# ---------------------------------------------------------------------------------------------
# decoding


@dataclass
class DecodedBatch:
    table: pa.Table | None
    quarantined: list[Quarantined]
    tombstones: int


_READ_OPTIONS = pa_json.ReadOptions(block_size=1 << 22)  # 4 MiB blocks parse in parallel


def _parse(payloads: Sequence[bytes], schema: RowSchema) -> pa.Table:
    return _parse_buffer(b"\n".join(payloads), schema)


def _parse_buffer(buffer: bytes, schema: RowSchema) -> pa.Table:
    options = pa_json.ParseOptions(explicit_schema=schema.parse_schema, unexpected_field_behavior="ignore") \
        if schema.parse_schema is not None else pa_json.ParseOptions()
    table = pa_json.read_json(BytesIO(buffer), parse_options=options, read_options=_READ_OPTIONS)
    table.validate(full=True)  # Arrow's JSON reader does not check UTF-8: invalid text raises here
    return table


def _rows(parsed: pa.Table, schema: RowSchema, topic: str | None, partition: int, offsets: pa.Array,
          ingested_at: datetime) -> pa.Table:
    op = parsed.column("op").combine_chunks()
    is_delete = pc.equal(op, "d")
    source = parsed.column("source").combine_chunks()
    columns: dict[str, pa.Array] = {}
    if schema.parse_schema is None:  # no Connect schema: take the inferred image
        images = [parsed.column(side).combine_chunks() if side in parsed.column_names else None
                  for side in ("before", "after")]
        names = []
        for image in images:
            if image is not None and pa.types.is_struct(image.type):
                names += [f.name for f in image.type if f.name not in names]
        for name in names:
            before_col, after_col = (
                image.field(name) if image is not None and pa.types.is_struct(image.type)
                and image.type.get_field_index(name) >= 0 else None for image in images)
            columns[name] = _pick(is_delete, before_col, after_col, len(parsed))
    else:
        before, after = parsed.column("before").combine_chunks(), parsed.column("after").combine_chunks()
        for name, spec in schema.columns.items():
            columns.update(lake_columns(name, spec, pc.if_else(is_delete, before.field(name), after.field(name))))
    columns["_op"] = op
    columns["_source_ts"] = source.field("ts_ms").cast(pa.timestamp("ms", "UTC"))
    columns["_lsn"] = source.field("lsn")
    columns["_tx_id"] = source.field("txId")
    return _with_position(columns, topic, partition, offsets, ingested_at)


def _with_position(columns: dict[str, pa.Array], topic: str | None, partition: int, offsets: pa.Array,
                   ingested_at: datetime) -> pa.Table:
    """The table of `columns` plus where each row was read and when."""
    count = len(offsets)
    columns["_kafka_topic"] = pa.array([topic] * count, pa.string())
    # One decode call reads one partition: the partition is a constant.
    columns["_kafka_partition"] = pa.array(np.full(count, partition, np.int32))
    columns["_kafka_offset"] = offsets
    columns["_ingested_at"] = pa.array([ingested_at] * count, pa.timestamp("us", "UTC"))
    return pa.table(columns)


def has_native_decoder() -> bool:
    """Whether the compiled decoder (native/tidewater_decode, built by `make install`) is installed."""
    return _native is not None


def _from_buffers(arrow_type: pa.DataType, count: int, column: tuple) -> pa.Array:
    """An array over the compiled decoder's (null_count, validity, values, offsets) of one column."""
    null_count, validity, values, value_offsets = column
    buffers = [None if validity is None else pa.py_buffer(validity)]
    if value_offsets is not None:
        buffers.append(pa.py_buffer(value_offsets))
    buffers.append(pa.py_buffer(values))
    return pa.Array.from_buffers(arrow_type, count, buffers, null_count=null_count)


def _decode_native(records: Sequence[Record], values: list[bytes | None], cache: SchemaCache,
                   ingested_at: datetime) -> DecodedBatch | None:
    """The whole chunk through the compiled decoder, or None when it declines (the Arrow path decides)."""
    first = next((value for value in values if value is not None), None)
    if _native is None or first is None:
        return None
    found = cache.envelope_prefix(first)
    if found is None:
        return None
    schema, prefix = found
    native_columns = schema.native_columns
    if native_columns is None:
        return None
    decoded = _native.decode_envelopes(values, [record.offset() for record in records], prefix, native_columns)
    if decoded is None:
        return None
    count, tombstones, offsets, image, op, source_ts, lsn, tx_id = decoded
    if count == 0:
        return DecodedBatch(None, [], tombstones)
    if not pc.all(_source_ts_in_range(_from_buffers(pa.int64(), count, source_ts))).as_py():
        return None  # the Arrow path quarantines the record whose change time is out of range
    columns: dict[str, pa.Array] = {}
    try:
        for (name, spec), column in zip(schema.columns.items(), image, strict=True):
            array = _from_buffers(spec.native_type or spec.arrow_type, count, column)
            columns.update(lake_columns(name, spec, array, converted=spec.native_type is None))
        for array in columns.values():
            if pa.types.is_decimal(array.type):
                _checked(array)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None  # a value that does not fit its type: the Arrow path finds and quarantines its record
    columns["_op"] = _from_buffers(pa.string(), count, op)
    columns["_source_ts"] = _from_buffers(pa.timestamp("ms", "UTC"), count, source_ts)
    columns["_lsn"] = _from_buffers(pa.int64(), count, lsn)
    columns["_tx_id"] = _from_buffers(pa.int64(), count, tx_id)
    table = _with_position(columns, records[0].topic(), records[0].partition(),
                           _from_buffers(pa.int64(), count, (0, None, offsets, None)), ingested_at)
    return DecodedBatch(table, [], tombstones)


def _pick(is_delete: pa.Array, before: pa.Array | None, after: pa.Array | None, count: int) -> pa.Array:
    if before is None and after is None:
        return pa.nulls(count)
    if before is None:
        before = pa.nulls(count, after.type)
    if after is None:
        after = pa.nulls(count, before.type)
    if before.type != after.type:
        after = after.cast(before.type) if pa.types.is_null(after.type) else after
        before = before.cast(after.type) if pa.types.is_null(before.type) else before
    return pc.if_else(is_delete, before, after)


_MAX_SOURCE_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _source_ts_in_range(ts_ms: pa.Array) -> pa.Array:
    """Whether each change time is one a database commit can have (null: unknown, allowed)."""
    return pc.fill_null(pc.and_(pc.greater_equal(ts_ms, 0), pc.less_equal(ts_ms, _MAX_SOURCE_TS_MS)), True)


def _invalid_rows(parsed: pa.Table, schema: RowSchema) -> list[tuple[int, str]]:
    """Rows that parsed but are no usable change event: unknown op, or no row image where one is due."""
    ops = parsed.column("op").to_pylist()
    if schema.parse_schema is not None:
        before_valid = parsed.column("before").is_valid().to_pylist()
        after_valid = parsed.column("after").is_valid().to_pylist()
    else:
        before_valid = after_valid = [True] * len(ops)
    source = parsed.column("source").combine_chunks()
    lsn_valid = source.field("lsn").is_valid().to_pylist()
    ts_in_range = _source_ts_in_range(source.field("ts_ms")).to_pylist()
    bad = []
    for index, op in enumerate(ops):
        if op not in OPERATIONS:
            bad.append((index, f"not a Debezium change event: op={op!r}"))
        elif op in ("c", "u", "r") and not after_valid[index]:
            bad.append((index, f"op {op!r} without an 'after' row image"))
        elif op == "d" and not before_valid[index]:
            bad.append((index, "delete without a 'before' row image"))
        elif not lsn_valid[index] and op != "r":  # an incremental snapshot's row has none (fill_snapshot_lsns)
            bad.append((index, "no source.lsn"))
        elif not ts_in_range[index]:
            bad.append((index, f"source.ts_ms {source.field('ts_ms')[index].as_py()} is not a time between "
                               "1970 and 9999"))
    return bad


_SPECIAL_FLOATS = ("NaN", "Infinity", "-Infinity")


def _with_special_floats(payload: bytes, schema: RowSchema) -> bytes | None:
    """The payload with its float columns' "NaN" / "Infinity" / "-Infinity" strings (how Kafka's JsonConverter
    writes them) turned into the bare tokens Arrow's JSON reader takes as floats; None if it has none."""
    floats = [name for name, spec in schema.columns.items() if pa.types.is_floating(spec.arrow_type)]
    if not floats:
        return None
    try:
        envelope = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    changed = False
    for side in ("before", "after"):
        image = envelope.get(side) if isinstance(envelope, dict) else None
        if isinstance(image, dict):
            for name in floats:
                if isinstance(image.get(name), str) and image[name] in _SPECIAL_FLOATS:
                    image[name] = float(image[name])
                    changed = True
    return json.dumps(envelope).encode() if changed else None


def _decode_group(group: _Group, ingested_at: datetime) -> tuple[pa.Table | None, list[Quarantined]]:
    try:
        parsed = _parse(group.payloads, group.schema)
        records = group.records
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Find the culprits one by one; the rest of the group still lands.
        tables, records, quarantined = [], [], []
        for record, payload in zip(group.records, group.payloads, strict=True):
            try:
                tables.append(_parse([payload], group.schema))
                records.append(record)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                floats = _with_special_floats(payload, group.schema)
                try:
                    if floats is None:
                        raise
                    tables.append(_parse([floats], group.schema))
                    records.append(record)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    quarantined.append(Quarantined(record, f"payload does not match its schema: {exc}"))
        if not tables:
            return None, quarantined
        parsed = pa.concat_tables(tables, promote_options="permissive")
        return _finish(parsed, group.schema, records, ingested_at, quarantined)
    return _finish(parsed, group.schema, records, ingested_at, [])


def _position(records: Sequence[Record]) -> tuple[str | None, int, pa.Array]:
    """(topic, partition, offsets) of consecutive records of one partition."""
    first = records[0] if records else None
    return (first.topic() if first else None, first.partition() if first else 0,
            pa.array([r.offset() for r in records], pa.int64()))


def decode_one_schema(schema: RowSchema, payloads: bytes, topic: str, partition: int, offsets: pa.Array,
                      ingested_at: datetime) -> pa.Table | None:
    """Newline-joined payloads of one schema → rows; None if any record is bad (decode them one by one)."""
    try:
        parsed = _parse_buffer(payloads, schema)
        if len(parsed) != len(offsets) or _invalid_rows(parsed, schema):
            return None
        return _rows(parsed, schema, topic, partition, offsets, ingested_at)
    except (pa.ArrowInvalid, pa.ArrowTypeError, binascii.Error, ValueError):
        return None


def _finish(parsed: pa.Table, schema: RowSchema, records: list[Record], ingested_at: datetime,
            quarantined: list[Quarantined]) -> tuple[pa.Table | None, list[Quarantined]]:
    if "op" not in parsed.column_names or "source" not in parsed.column_names:
        return None, quarantined + [Quarantined(r, "not a Debezium change event (no op/source)") for r in records]
    bad = _invalid_rows(parsed, schema)
    if bad:
        bad_index = {index for index, _ in bad}
        quarantined = quarantined + [Quarantined(records[index], error) for index, error in bad]
        keep = [index for index in range(len(records)) if index not in bad_index]
        if not keep:
            return None, quarantined
        parsed = parsed.take(pa.array(keep, pa.int64()))
        records = [records[index] for index in keep]
    try:
        return _rows(parsed, schema, *_position(records), ingested_at), quarantined
    except (pa.ArrowInvalid, pa.ArrowTypeError, binascii.Error, ValueError) as exc:
        if len(records) == 1:
            return None, [*quarantined, Quarantined(records[0], f"value cannot be converted: {exc}")]
        # A value that parsed but does not convert (e.g. a bad timestamp text): isolate it.
        tables = []
        for index, record in enumerate(records):
            table, bad_one = _finish(parsed.slice(index, 1), schema, [record], ingested_at, [])
            quarantined += bad_one
            if table is not None:
                tables.append(table)
        return (pa.concat_tables(tables, promote_options="permissive") if tables else None), quarantined


def decode(records: Iterable[Record], ingested_at: datetime, cache: SchemaCache | None = None) -> DecodedBatch:
    """Decodes consecutive records of one topic partition into one table (rows in offset order)."""
    cache = cache or SchemaCache()
    records = list(records)
    values = [record.value() for record in records]
    native = _decode_native(records, values, cache, ingested_at)
    if native is not None:
        return native
    if values and None not in values:
        fast = cache.one_schema_group(records, values)
        if fast is not None:
            table = decode_one_schema(fast.schema, b"\n".join(fast.payloads), *_position(records), ingested_at)
            if table is not None:
                return DecodedBatch(table, [], 0)
    groups: list[_Group] = []
    quarantined = []
    tombstones = 0
    for record, value in zip(records, values, strict=True):
        if value is None:
            tombstones += 1
            continue
        try:
            schema, payload = cache.split(value)
        except DecodeError as exc:
            quarantined.append(Quarantined(record, str(exc)))
            continue
        if not groups or groups[-1].schema is not schema:
            groups.append(_Group(schema))
        groups[-1].records.append(record)
        groups[-1].payloads.append(payload)
    tables = []
    for group in groups:
        table, bad = _decode_group(group, ingested_at)
        quarantined += bad
        if table is not None:
            tables.append(table)
    if not tables:
        return DecodedBatch(None, quarantined, tombstones)
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    if len(tables) > 1:
        table = table.sort_by("_kafka_offset")
    return DecodedBatch(table, quarantined, tombstones)
