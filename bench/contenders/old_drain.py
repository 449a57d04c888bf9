"""The drain as it was before the lake became a DuckLake (git 149b7c5): a benchmark contender, not product code.

Copied from ``include/tidewater/drain/drainer.py`` and ``include/tidewater/drain/lake.py`` of commit 149b7c5 and
trimmed to what bench/drain_benchmark.py runs (no replay, no quarantine-limit check: the benchmark's events all
decode). What it keeps is the old protocol's cost: per-partition journal on S3, recovery listing, Parquet files
under ``raw/``, the consumer group's committed offset as the only progress marker (a synchronous commit), the
journal deleted afterwards. It shares today's ChunkEncoder and read loop with the new drain (unchanged since,
except that EncodedFile now carries its schema), so the two differ only in how a run lands and commits.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from tidewater.drain.drainer import DrainLimits
from tidewater.drain.encoder import ChunkEncoder

_M_TRIM_THRESHOLD = -1
RAW = "raw"
QUARANTINE = "quarantine"
INFLIGHT = "_drain/inflight"
_KEY = re.compile(r"(?P<topic>.+)-p(?P<partition>\d+)-o(?P<first>\d{20})-(?P<last>\d{20})\.(?:parquet|jsonl)$")


# -- the old lake layout and S3 operations (drain/lake.py at 149b7c5) -----------------------------------------

def table_of(topic: str) -> str:
    return topic.rsplit(".", 1)[-1]


def _file_name(topic: str, partition: int, first: int, last: int, suffix: str) -> str:
    return f"{topic}-p{partition}-o{first:020d}-{last:020d}.{suffix}"


def raw_key(topic: str, dt: str, partition: int, first: int, last: int) -> str:
    return f"{RAW}/{table_of(topic)}/dt={dt}/{_file_name(topic, partition, first, last, 'parquet')}"


def raw_dt_prefix(topic: str, dt: str) -> str:
    return f"{RAW}/{table_of(topic)}/dt={dt}/"


def quarantine_prefix(topic: str) -> str:
    return f"{QUARANTINE}/{topic}/"


def quarantine_key(topic: str, partition: int, first: int, last: int) -> str:
    return quarantine_prefix(topic) + _file_name(topic, partition, first, last, "jsonl")


def inflight_key(topic: str, partition: int) -> str:
    return f"{INFLIGHT}/{topic}/p{partition}.json"


@dataclass(frozen=True)
class LakeFile:
    key: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int


def parse_key(key: str) -> LakeFile | None:
    match = _KEY.search(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return LakeFile(key, match["topic"], int(match["partition"]), int(match["first"]), int(match["last"]))


class Lake:
    """S3 operations on one bucket, through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def put_parquet(self, key: str, body: bytes) -> int:
        self.put(key, body, "application/vnd.apache.parquet")
        return len(body)

    def put_jsonl(self, key: str, rows: list[dict[str, Any]]) -> None:
        body = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
        self.put(key, body, "application/x-ndjson")

    def get_json(self, key: str) -> Any | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value).encode(), "application/json")

    def keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def partition_files(self, prefix: str, topic: str, partition: int) -> list[LakeFile]:
        files = [parse_key(key) for key in self.keys(prefix)]
        return sorted((f for f in files if f and f.topic == topic and f.partition == partition),
                      key=lambda f: (f.first_offset, f.last_offset))

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


# -- the old drain (drain/drainer.py at 149b7c5) --------------------------------------------------------------

@dataclass
class PartitionProgress:
    partition: int
    start: int
    end: int
    rows: int = 0
    files: int = 0
    quarantined: int = 0
    tombstones: int = 0
    bytes_written: int = 0


@dataclass
class DrainResult:
    topic: str
    partitions: list[PartitionProgress] = field(default_factory=list)
    remaining_lag: int = 0

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def files(self) -> int:
        return sum(p.files for p in self.partitions)


def _committed(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
    committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
    return {tp.partition: tp.offset for tp in committed}


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30, cached=False)


def _commit(consumer: Consumer, topic: str, offsets: dict[int, int]) -> None:
    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)


class _PartitionWriter:
    """Writes one partition's slice: journals each new destination, then uploads."""

    def __init__(self, lake: Lake, topic: str, progress: PartitionProgress, encoder: ChunkEncoder) -> None:
        self.lake, self.topic, self.progress, self.encoder = lake, topic, progress, encoder
        self.journal_key = inflight_key(topic, progress.partition)
        self.journal = {"start": progress.start, "dts": [], "quarantine": False}
        self.raw_keys: list[str] = []

    def _journal(self, dt: str | None = None, quarantine: bool = False) -> None:
        changed = False
        if dt is not None and dt not in self.journal["dts"]:
            self.journal["dts"].append(dt)
            changed = True
        if quarantine and not self.journal["quarantine"]:
            self.journal["quarantine"] = True
            changed = True
        if changed:
            self.lake.put_json(self.journal_key, self.journal)

    def write(self, records: list) -> None:
        chunk = self.encoder.encode(records)
        progress = self.progress
        progress.tombstones += chunk.tombstones
        if chunk.quarantined:
            self._journal(quarantine=True)
            offsets = [q.record.offset() for q in chunk.quarantined]
            key = quarantine_key(self.topic, progress.partition, min(offsets), max(offsets))
            self.lake.put_jsonl(key, [q.as_json() for q in chunk.quarantined])
            progress.quarantined += len(chunk.quarantined)
        for file in chunk.files:
            self._journal(dt=file.dt)
            key = raw_key(self.topic, file.dt, progress.partition, file.first_offset, file.last_offset)
            progress.bytes_written += self.lake.put_parquet(key, file.body)
            self.raw_keys.append(key)
            progress.files += 1
            progress.rows += file.rows


def _recover(lake: Lake, topic: str, partition: int, committed: int) -> None:
    """Step 1 of the old protocol: delete what a run that died before committing left behind."""
    key = inflight_key(topic, partition)
    journal = lake.get_json(key)
    if journal is None:
        return
    if journal["start"] == committed:
        prefixes = [raw_dt_prefix(topic, dt) for dt in journal["dts"]]
        if journal.get("quarantine"):
            prefixes.append(quarantine_prefix(topic))
        leftovers = [f.key for prefix in prefixes for f in lake.partition_files(prefix, topic, partition)
                     if f.first_offset >= committed]
        if leftovers:
            lake.delete(leftovers)
    lake.delete([key])


def _consume_slice(consumer: Consumer, topic: str, progress: PartitionProgress, limits: DrainLimits,
                   flush: Callable[[list], None]) -> None:
    """Reads [start, end) of one partition and hands it to `flush` in bounded chunks (one chunk in flight)."""
    consumer.assign([TopicPartition(topic, progress.partition, progress.start)])
    chunk: list = []
    chunk_bytes = 0
    next_offset = progress.start
    last_progress = time.monotonic()
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drain-writer")
    in_flight: Future | None = None

    def hand_over(records: list) -> None:
        nonlocal in_flight
        if in_flight is not None:
            in_flight.result()
        in_flight = writer.submit(flush, records)

    try:
        while next_offset < progress.end:
            messages = consumer.consume(num_messages=limits.poll_batch, timeout=1.0)
            if not messages:
                position = consumer.position([TopicPartition(topic, progress.partition)])[0].offset
                if position >= progress.end:
                    break
                if time.monotonic() - last_progress > limits.stall_timeout_s:
                    raise RuntimeError(f"{topic}[{progress.partition}]: no records for {limits.stall_timeout_s:.0f}s "
                                       f"at offset {next_offset}, expected up to {progress.end}")
                continue
            last_progress = time.monotonic()
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(error)
                offset = message.offset()
                if offset >= progress.end:
                    next_offset = offset
                    break
                chunk.append(message)
                value = message.value()
                chunk_bytes += len(value) if value else 0
                next_offset = offset + 1
                if len(chunk) >= limits.file_max_rows or chunk_bytes >= limits.file_max_bytes:
                    hand_over(chunk)
                    chunk, chunk_bytes = [], 0
        if chunk:
            hand_over(chunk)
        if in_flight is not None:
            in_flight.result()
    finally:
        writer.shutdown(wait=True)
        consumer.unassign()


def _keep_freed_memory() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)


def drain_topic(consumer: Consumer, lake: Lake, topic: str, limits: DrainLimits,
                now: datetime | None = None) -> DrainResult:
    """The old protocol for every partition of `topic`: recover, slice, write, commit the group's offsets, drop
    the journals. The consumer must not auto-commit."""
    _keep_freed_memory()
    ingested_at = now or datetime.now(UTC)
    metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise RuntimeError(f"topic {topic} does not exist")
    partitions = sorted(metadata.partitions)
    committed = _committed(consumer, topic, partitions)
    result = DrainResult(topic)
    for partition in partitions:
        low, high = _watermarks(consumer, topic, partition)
        start = committed[partition]
        if start == OFFSET_INVALID or start < 0:
            start = low
        elif start < low:
            raise RuntimeError(f"{topic}[{partition}]: offsets {start}..{low - 1} were removed by retention")
        _recover(lake, topic, partition, start)
        result.partitions.append(PartitionProgress(partition, start, min(high, start + limits.max_records_per_run)))
    encoder = ChunkEncoder(ingested_at)
    writers: list[_PartitionWriter] = []
    for progress in result.partitions:
        if progress.end <= progress.start:
            continue
        writer = _PartitionWriter(lake, topic, progress, encoder)
        writers.append(writer)
        _consume_slice(consumer, topic, progress, limits, writer.write)
    if any(p.end > p.start for p in result.partitions):
        _commit(consumer, topic, {p.partition: p.end for p in result.partitions if p.end > p.start})
        lake.delete([w.journal_key for w in writers if w.journal["dts"] or w.journal["quarantine"]])
    result.remaining_lag = sum(_watermarks(consumer, topic, p.partition)[1] - p.end for p in result.partitions)
    return result
