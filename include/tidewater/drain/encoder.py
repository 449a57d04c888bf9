"""A chunk of Kafka records → Parquet files (one per change date), in this process or in a worker process.

Decoding and Parquet encoding are CPU work that holds the GIL for part of the time; the drain's task
process also has to consume from Kafka. For large slices a worker process takes the common case (a chunk
whose records share one schema: sliced payloads and offsets are all it needs) so both cores work. Any
other chunk — tombstones, several schemas, a record the worker cannot decode — is decoded here, record
by record where needed, so quarantine works exactly as without a worker.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidewater.drain.debezium import Quarantined, Record, SchemaCache, decode, decode_one_schema


@dataclass(frozen=True)
class EncodedFile:
    dt: str
    first_offset: int
    last_offset: int
    rows: int
    body: bytes
    newest_source_ts: datetime | None


@dataclass
class EncodedChunk:
    files: list[EncodedFile] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    tombstones: int = 0


def encode_table(table: pa.Table, ingested_at: datetime) -> list[EncodedFile]:
    """One zstd Parquet file per change date (the drain's own date for rows without a source time)."""
    dates = pc.strftime(table["_source_ts"], format="%Y-%m-%d")
    unique_dates = pc.unique(dates).to_pylist()
    files = []
    for dt in unique_dates:
        if len(unique_dates) == 1:
            part = table
        elif dt is None:
            part = table.filter(pc.is_null(dates))
        else:
            part = table.filter(pc.equal(dates, dt))
        offsets = part["_kafka_offset"]
        buffer = BytesIO()
        pq.write_table(part, buffer, compression="zstd")
        files.append(EncodedFile(dt or ingested_at.strftime("%Y-%m-%d"), pc.min(offsets).as_py(),
                                 pc.max(offsets).as_py(), part.num_rows, buffer.getvalue(),
                                 pc.max(part["_source_ts"]).as_py()))
    return files


_worker_schemas = SchemaCache()  # per worker process


def _encode_in_worker(prefix: bytes, payloads: bytes, topic: str, partition: int, offsets: bytes,
                      ingested_at: datetime) -> list[EncodedFile] | None:
    schema = _worker_schemas.schema_of_prefix(prefix)
    offset_array = pa.Array.from_buffers(pa.int64(), len(offsets) // 8, [None, pa.py_buffer(offsets)])
    table = decode_one_schema(schema, payloads, topic, partition, offset_array, ingested_at)
    return None if table is None else encode_table(table, ingested_at)


class ChunkEncoder:
    """Encodes chunks; with `use_worker`, one-schema chunks go to a worker process."""

    def __init__(self, ingested_at: datetime, use_worker: bool = False) -> None:
        self.ingested_at = ingested_at
        self.schemas = SchemaCache()
        # spawn, not fork: the task process runs librdkafka threads, which a fork would copy half-alive.
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) \
            if use_worker else None

    def encode(self, records: list[Record]) -> EncodedChunk:
        if self.pool is not None and records:
            values = [record.value() for record in records]
            group = self.schemas.one_schema_group(records, values) if None not in values else None
            if group is not None:
                offsets = pa.array([r.offset() for r in records], pa.int64()).buffers()[1].to_pybytes()
                files = self.pool.submit(_encode_in_worker, group.prefix, b"\n".join(group.payloads),
                                         records[0].topic(), records[0].partition(), offsets,
                                         self.ingested_at).result()
                if files is not None:
                    return EncodedChunk(files)
        batch = decode(records, self.ingested_at, self.schemas)
        files = encode_table(batch.table, self.ingested_at) if batch.table is not None and batch.table.num_rows \
            else []
        return EncodedChunk(files, batch.quarantined, batch.tombstones)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
