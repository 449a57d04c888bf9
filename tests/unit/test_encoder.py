"""Chunks encode to the same Parquet files in a worker process as in the task process."""

from __future__ import annotations

from io import BytesIO

import pyarrow.parquet as pq
import pytest

from tidewater.drain.encoder import ChunkEncoder

from .test_debezium_decode import NOW, fixture, record


@pytest.fixture(scope="module")
def worker():
    encoder = ChunkEncoder(NOW, use_worker=True)
    yield encoder
    encoder.close()


def _tables(chunk):
    return [(f.dt, f.first_offset, f.last_offset, f.rows, pq.read_table(BytesIO(f.body))) for f in chunk.files]


def test_worker_and_in_process_encoding_agree(worker):
    created, deleted = fixture("order_items", "c"), fixture("order_items", "d")
    records = [record(created, 10), record(deleted, 11), record(created, 12)]

    in_worker = _tables(worker.encode(records))
    in_process = _tables(ChunkEncoder(NOW).encode(records))

    assert [t[:4] for t in in_worker] == [t[:4] for t in in_process]
    assert all(a[4].equals(b[4]) for a, b in zip(in_worker, in_process, strict=True))
    assert sum(t[3] for t in in_worker) == 3


def test_a_bad_record_in_a_worker_chunk_is_still_quarantined(worker):
    created = fixture("order_items", "c")
    bad = created["value"].replace('"quantity":', '"quantity":"lots","x":', 1).encode()

    chunk = worker.encode([record(created, 1), record(created, 2, bad), record(created, 3)])

    assert [q.record.offset() for q in chunk.quarantined] == [2]
    assert sum(f.rows for f in chunk.files) == 2
