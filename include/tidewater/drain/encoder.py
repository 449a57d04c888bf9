"""A chunk of Kafka records → Parquet files, one per change date.

Decoding goes through the compiled decoder when it is installed (see debezium.py), else through Arrow.

(A worker process for decoding was measured and dropped: on two cores shared with the broker, shipping
payloads to it cost more than it saved — see docs/benchmarks.md.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tidewater.drain.debezium import Quarantined, Record, SchemaCache, decode, has_native_decoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedFile:
    dt: str
    first_offset: int
    last_offset: int
    rows: int
    body: bytes
    newest_source_ts: datetime | None
    schema: pa.Schema


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
                                 pc.max(part["_source_ts"]).as_py(), part.schema))
    return files


class ChunkEncoder:
    """Decodes chunks of one topic (keeping its schema cache across chunks) and encodes them as Parquet."""

    def __init__(self, ingested_at: datetime) -> None:
        self.ingested_at = ingested_at
        self.schemas = SchemaCache()
        if not has_native_decoder():
            log.warning("tidewater_decode is not installed: decoding with Arrow's JSON reader, about 1.5x slower. "
                        "Run `make install` (needs cargo) to build native/tidewater_decode.")

    def encode(self, records: list[Record]) -> EncodedChunk:
        batch = decode(records, self.ingested_at, self.schemas)
        files = encode_table(batch.table, self.ingested_at) if batch.table is not None and batch.table.num_rows \
            else []
        return EncodedChunk(files, batch.quarantined, batch.tombstones)
