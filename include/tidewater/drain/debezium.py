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
"""

from __future__ import annotations

import base64
import binascii
import json
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


def _cast_to(arrow_type: pa.DataType) -> Converter:
    return lambda array: array.cast(arrow_type)


def _decimal_converter(precision: int, scale: int) -> tuple[pa.DataType, Converter]:
    """Connect Decimal: base64 of the unscaled value's big-endian two's complement bytes."""
    arrow_type = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)

    def convert(array: pa.Array) -> pa.Array:
        unscaled = [
            None if text is None else int.from_bytes(binascii.a2b_base64(text), "big", signed=True)
            for text in array.to_pylist()
        ]
        if precision <= 38 and all(v is None or _INT64_MIN <= v <= _INT64_MAX for v in unscaled):
            # Same 128-bit storage, read with the column's scale: exact and vectorised.
            storage = pa.array(unscaled, pa.int64()).cast(pa.decimal128(38, 0))
            return pa.Array.from_buffers(arrow_type, len(storage), storage.buffers(),
                                         null_count=storage.null_count)
        return pa.array([None if v is None else Decimal(v).scaleb(-scale) for v in unscaled], arrow_type)

    return arrow_type, convert


def _binary(array: pa.Array) -> pa.Array:
    return pa.array([None if text is None else base64.b64decode(text) for text in array.to_pylist()],
                    pa.binary())


def _variable_scale_decimal(array: pa.Array) -> pa.Array:
    """io.debezium.data.VariableScaleDecimal (NUMERIC without a declared scale) → exact text."""
    out = []
    for item in array.to_pylist():
        if item is None or item.get("value") is None:
            out.append(None)
        else:
            unscaled = int.from_bytes(base64.b64decode(item["value"]), "big", signed=True)
            out.append(str(Decimal(unscaled).scaleb(-int(item["scale"]))))
    return pa.array(out, pa.string())


_PRIMITIVES: dict[str, tuple[pa.DataType, pa.DataType]] = {
    "int8": (pa.int64(), pa.int8()),
    "int16": (pa.int64(), pa.int16()),
    "int32": (pa.int64(), pa.int32()),
    "int64": (pa.int64(), pa.int64()),
    "float32": (pa.float64(), pa.float32()),
    "float64": (pa.float64(), pa.float64()),
    "boolean": (pa.bool_(), pa.bool_()),
    "string": (pa.string(), pa.string()),
}

# The compiled decoder's conversions of the primitives (float32 has none: it stays on the Arrow path).
_NATIVE_PRIMITIVES = {"int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "float64": "float64",
                      "boolean": "boolean", "string": "string"}

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
    kind, name = field_schema.get("type"), field_schema.get("name")
    if name == "org.apache.kafka.connect.data.Decimal":
        params = field_schema.get("parameters") or {}
        scale = int(params.get("scale", 0))
        precision = int(params.get("connect.decimal.precision", 38))
        arrow_type, convert = _decimal_converter(max(precision, scale, 1), scale)
        return ColumnType(pa.string(), arrow_type, convert,
                          "decimal_base64" if pa.types.is_decimal128(arrow_type) else None)
    if name == "io.debezium.data.VariableScaleDecimal":
        return ColumnType(pa.struct([("scale", pa.int64()), ("value", pa.string())]), pa.string(),
                          _variable_scale_decimal)
    if name in _LOGICAL:
        json_type, arrow_type = _LOGICAL[name]
        if pa.types.is_date32(arrow_type) or pa.types.is_time32(arrow_type):
            return ColumnType(json_type, arrow_type, lambda a, t=arrow_type: a.cast(pa.int32()).cast(t), "int32")
        return ColumnType(json_type, arrow_type, None,
                          "zoned_timestamp_us" if pa.types.is_string(json_type) else "int64")
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
        fields = {f["field"]: f for f in envelope_schema.get("fields", [])}
        if "op" not in fields or not ({"before", "after"} <= fields.keys()):
            raise DecodeError(f"not a Debezium envelope schema ({envelope_schema.get('name')})")
        value_schema = fields["after"] if fields["after"].get("fields") else fields["before"]
        columns = {f["field"]: column_type(f) for f in value_schema.get("fields", [])}
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
    return pa_json.read_json(BytesIO(buffer), parse_options=options, read_options=_READ_OPTIONS)


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
            columns[name] = _convert(pc.if_else(is_delete, before.field(name), after.field(name)), spec)
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
    columns = {name: _from_buffers(spec.arrow_type, count, column)
               for (name, spec), column in zip(schema.columns.items(), image, strict=True)}
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


def _invalid_rows(parsed: pa.Table, schema: RowSchema) -> list[tuple[int, str]]:
    """Rows that parsed but are no usable change event: unknown op, or no row image where one is due."""
    ops = parsed.column("op").to_pylist()
    if schema.parse_schema is not None:
        before_valid = parsed.column("before").is_valid().to_pylist()
        after_valid = parsed.column("after").is_valid().to_pylist()
    else:
        before_valid = after_valid = [True] * len(ops)
    lsn_valid = parsed.column("source").combine_chunks().field("lsn").is_valid().to_pylist()
    bad = []
    for index, op in enumerate(ops):
        if op not in OPERATIONS:
            bad.append((index, f"not a Debezium change event: op={op!r}"))
        elif op in ("c", "u", "r") and not after_valid[index]:
            bad.append((index, f"op {op!r} without an 'after' row image"))
        elif op == "d" and not before_valid[index]:
            bad.append((index, "delete without a 'before' row image"))
        elif not lsn_valid[index]:
            bad.append((index, "no source.lsn"))
    return bad


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
