"""A chunk of Kafka records → Parquet files, one per change date.

Decoding goes through the compiled decoder when it is installed (see debezium.py), else through Arrow.

(A worker process for decoding was measured and dropped: on two cores shared with the broker, shipping
payloads to it cost more than it saved — see docs/benchmarks.md.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
    last_lsn: int | None = None  # of the chunk's last change (None: no change in it)


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

    def encode(self, records: list[Record], previous_lsn: Callable[[], int | None] = lambda: None) -> EncodedChunk:
        """One chunk of one partition, in offset order; `previous_lsn` gives the LSN of the partition's change
        before the chunk (asked only if the chunk starts with rows that have none)."""
        batch = decode(records, self.ingested_at, self.schemas)
        table = batch.table
        last_lsn = None
        if table is not None and table.num_rows:
            table = fill_snapshot_lsns(table, previous_lsn)
            last_lsn = table.column("_lsn")[-1].as_py()
        files = encode_table(table, self.ingested_at) if table is not None and table.num_rows else []
        return EncodedChunk(files, batch.quarantined, batch.tombstones, last_lsn)


def fill_snapshot_lsns(table: pa.Table, previous_lsn: Callable[[], int | None]) -> pa.Table:
    """Gives the rows of an incremental snapshot (op 'r', no source.lsn) the LSN of the change before them in
    the partition (`previous_lsn()` for the chunk's first rows; 0 for a partition's first). Debezium emits such
    a row once no change of it happened within its chunk's watermarks, so its state follows every earlier change
    of the partition and precedes every later one: ordered by (LSN, offset), it falls in its place."""
    lsn = table.column("_lsn")
    if not lsn.null_count:
        return table
    filled = pc.fill_null_forward(lsn.combine_chunks())
    if filled.null_count:
        filled = pc.fill_null(filled, previous_lsn() or 0)
    return table.set_column(table.schema.get_field_index("_lsn"), "_lsn", filled)
