"""Drains one Kafka CDC topic into Parquet on S3 with exactly-once effect.

Protocol, per partition (the Kafka consumer group's committed offset C is the only progress marker):

1. Recover. If an in-flight journal ``_drain/inflight/<topic>/p<N>.json`` exists and its ``start``
   equals C, the run that wrote it died before committing: every lake object of this partition whose
   first offset is >= C, in the date folders and quarantine the journal names, is a leftover. They are
   deleted. (A journal whose start is below C belongs to a run that committed but died before
   removing it.) Then the journal is removed.
2. Bound the slice: read the high watermark H now and drain [C, min(H, C + budget)), so a run ends.
3. Consume in order; cut a file whenever it reaches the row or byte bound (memory stays bounded);
   decode it; write one Parquet object per change date, named by its first and last offsets. Before the
   first object goes into a date folder (or quarantine), the journal is (re)written to name it.
4. Check the share of quarantined records: above ``max_bad_share`` the run fails here, before its commit,
   so the journals stay and every retry recovers (step 1), drains the same slice and fails the same way until
   a person accepts the quarantine for one run (``accept_quarantine``) or fixes the cause. The failed run
   deletes the raw files it wrote (readers never see uncommitted rows) and keeps its quarantine files for
   people to read (the journal names them). Otherwise, after every
   partition's objects are in S3, commit the end offsets synchronously; then delete the journals.

A crash at any point leaves either no commit (step 1 of the next run removes whatever the dead run
wrote, and the records are drained again) or a commit of exactly what is in the lake. S3 PUTs are
atomic, so a crash in the middle of a file leaves no partial object. Offsets are never auto-committed.

Replay (recovery) rewinds: it commits an earlier offset R' (moved back to a file boundary, so no
file straddles it) and writes a journal naming every date folder holding files at or after R'; the
normal protocol then treats those files as leftovers, deletes them and drains them again.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from tidewater.drain import lake as lake_layout
from tidewater.drain.encoder import ChunkEncoder
from tidewater.drain.lake import Lake

log = logging.getLogger(__name__)
_M_TRIM_THRESHOLD = -1  # mallopt parameter number, from glibc's malloc.h


class DrainError(RuntimeError):
    pass


class QuarantineLimitExceeded(DrainError):
    """Too many records of one slice were quarantined; nothing was committed."""


REASON_MAX_CHARS = 200  # a quarantine reason is kept to this many characters in summaries
EXTRA_MAX_REASONS = 20  # most frequent reasons kept in an asset event


@dataclass(frozen=True)
class DrainLimits:
    max_records_per_run: int = 2_000_000  # per partition
    file_max_rows: int = 200_000
    file_max_bytes: int = 64 * 1024 * 1024  # raw record bytes per file
    max_bad_share: float = 0.05
    poll_batch: int = 5_000
    stall_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_records_per_run", "file_max_rows", "file_max_bytes", "poll_batch", "stall_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"DrainLimits.{name}={value!r}: must be a number > 0")
        if not (math.isfinite(self.max_bad_share) and 0 <= self.max_bad_share <= 1):
            raise ValueError(f"DrainLimits.max_bad_share={self.max_bad_share!r}: must be a share in [0, 1]")


@dataclass(frozen=True)
class Replay:
    """Start again from these offsets (partition → offset) or from a time (epoch ms)."""

    offsets: dict[int, int] | None = None
    timestamp_ms: int | None = None


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
    newest_source_ts: datetime | None = None
    quarantine_uri: str = ""
    quarantine_files: list[str] = field(default_factory=list)  # keys written by this run
    quarantine_reasons: dict[str, int] = field(default_factory=dict)  # reason → records, most frequent first
    accepted_quarantine: bool = False  # committed above max_bad_share because a person accepted it

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def files(self) -> int:
        return sum(p.files for p in self.partitions)

    @property
    def quarantined(self) -> int:
        return sum(p.quarantined for p in self.partitions)

    @property
    def records(self) -> int:
        return sum(p.end - p.start for p in self.partitions)

    def asset_extra(self) -> dict:
        """Metadata for the Airflow asset event of the table."""
        return {
            "topic": self.topic,
            "rows": self.rows,
            "files": self.files,
            "quarantined": self.quarantined,
            "offsets_before": {str(p.partition): p.start for p in self.partitions},
            "offsets_after": {str(p.partition): p.end for p in self.partitions},
            "remaining_lag": self.remaining_lag,
            "newest_source_ts": self.newest_source_ts.isoformat() if self.newest_source_ts else None,
            "quarantine_reasons": dict(list(self.quarantine_reasons.items())[:EXTRA_MAX_REASONS]),
            "quarantine_files": self.quarantine_files,
            "accepted_quarantine": self.accepted_quarantine,
        }

    def as_dict(self) -> dict:
        return {**self.asset_extra(), "partitions": [asdict(p) for p in self.partitions]}


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
        self.journal_key = lake_layout.inflight_key(topic, progress.partition)
        self.journal = {"start": progress.start, "dts": [], "quarantine": False}
        self.newest_source_ts: datetime | None = None
        self.quarantine_keys: list[str] = []
        self.raw_keys: list[str] = []
        self.reasons: Counter[str] = Counter()

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
            key = lake_layout.quarantine_key(self.topic, progress.partition, min(offsets), max(offsets))
            self.lake.put_jsonl(key, [q.as_json() for q in chunk.quarantined])
            self.quarantine_keys.append(key)
            self.reasons.update(short_reason(q.error) for q in chunk.quarantined)
            progress.quarantined += len(chunk.quarantined)
            for q in chunk.quarantined[:3]:
                log.warning("quarantined %s[%s]@%s: %s", self.topic, progress.partition, q.record.offset(),
                            q.error)
        for file in chunk.files:
            self._journal(dt=file.dt)
            key = lake_layout.raw_key(self.topic, file.dt, progress.partition, file.first_offset, file.last_offset)
            progress.bytes_written += self.lake.put_parquet(key, file.body)
            self.raw_keys.append(key)
            progress.files += 1
            progress.rows += file.rows
            if file.newest_source_ts and (self.newest_source_ts is None
                                          or file.newest_source_ts > self.newest_source_ts):
                self.newest_source_ts = file.newest_source_ts


def short_reason(error: str) -> str:
    """A quarantine error's first line, cut to REASON_MAX_CHARS (what summaries and emails count by)."""
    line = next((part.strip() for part in error.splitlines() if part.strip()), "no error message")
    return line if len(line) <= REASON_MAX_CHARS else line[:REASON_MAX_CHARS - 1] + "…"


def _check_quarantine(result: DrainResult, limits: DrainLimits, accept: bool) -> None:
    """Step 4's check: fails the run above the limit unless a person accepted this topic's quarantine."""
    records, quarantined = result.records, result.quarantined
    if not records or quarantined / records <= limits.max_bad_share:
        return
    if accept:
        result.accepted_quarantine = True
        log.warning("%s: %d of %d records quarantined, above the %.1f%% limit; committed because "
                    "accept_quarantine_topic names this topic", result.topic, quarantined, records,
                    limits.max_bad_share * 100)
        return
    reasons = "; ".join(f"{reason} ({count})" for reason, count in list(result.quarantine_reasons.items())[:5])
    raise QuarantineLimitExceeded(
        f"{result.topic}: {quarantined} of {records} records ({quarantined / records:.1%}) were quarantined, "
        f"above the {limits.max_bad_share:.1%} limit (TIDEWATER_DRAIN_MAX_BAD_SHARE). Nothing of this slice landed "
        "and its offsets are NOT committed: every run fails the same way until this is resolved. "
        f"The records are in {result.quarantine_uri} "
        f"(raw key, value, headers, offset and the error of each). Reasons: {reasons}. "
        "Fix the cause (producer, connector settings or decoder) and let the next run drain them again, or "
        "accept them: trigger cdc_drain with {\"accept_quarantine_topic\": \"" + result.topic + "\"}, which lands "
        "the rest, commits, and reports the quarantined records by email.")


def _recover(lake: Lake, topic: str, partition: int, committed: int) -> None:
    """Step 1 of the protocol: delete what a run that died before committing left behind."""
    key = lake_layout.inflight_key(topic, partition)
    journal = lake.get_json(key)
    if journal is None:
        return
    if journal["start"] == committed:
        prefixes = [lake_layout.raw_dt_prefix(topic, dt) for dt in journal["dts"]]
        if journal.get("quarantine"):
            prefixes.append(lake_layout.quarantine_prefix(topic))
        leftovers = [f.key for prefix in prefixes for f in lake.partition_files(prefix, topic, partition)
                     if f.first_offset >= committed]
        if leftovers:
            log.warning("%s[%s]: removing %d objects of a drain that died before committing offset %s",
                        topic, partition, len(leftovers), committed)
            lake.delete(leftovers)
    lake.delete([key])


def _rewind(lake: Lake, consumer: Consumer, topic: str, targets: dict[int, int]) -> None:
    """Replay: commit earlier offsets and mark the files after them as leftovers of a dead run."""
    for partition, target in targets.items():
        files = lake.partition_files(lake_layout.raw_table_prefix(topic), topic, partition) + \
            lake.partition_files(lake_layout.quarantine_prefix(topic), topic, partition)
        start = target
        while True:  # move back until no file straddles the start
            straddling = [f.first_offset for f in files if f.last_offset >= start and f.first_offset < start]
            if not straddling:
                break
            start = min(straddling)
        after = [f for f in files if f.first_offset >= start]
        dts = sorted({f.key.split("/dt=", 1)[1].split("/", 1)[0] for f in after if "/dt=" in f.key})
        quarantine = any(f.key.startswith(lake_layout.QUARANTINE) for f in after)
        lake.put_json(lake_layout.inflight_key(topic, partition),
                      {"start": start, "dts": dts, "quarantine": quarantine})
        _commit(consumer, topic, {partition: start})
        log.warning("%s[%s]: replay from offset %s (asked %s); %d files will be drained again",
                    topic, partition, start, target, len(after))


def _replay_targets(consumer: Consumer, topic: str, partitions: list[int], replay: Replay) -> dict[int, int]:
    if replay.offsets is not None:
        unknown = set(replay.offsets) - set(partitions)
        if unknown:
            raise DrainError(f"replay of {topic}: partitions {sorted(unknown)} do not exist "
                             f"(the topic has {sorted(partitions)})")
        targets = dict(replay.offsets)
    else:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, replay.timestamp_ms) for p in partitions], timeout=30)
        targets = {tp.partition: (tp.offset if tp.offset >= 0 else _watermarks(consumer, topic, tp.partition)[1])
                   for tp in found}
    for partition, offset in targets.items():
        low, _ = _watermarks(consumer, topic, partition)
        if offset < low:
            raise DrainError(f"replay of {topic}[{partition}] from offset {offset}: Kafka keeps only offsets "
                             f">= {low} (older records were removed by retention)")
    return targets


def _consume_slice(consumer: Consumer, topic: str, progress: PartitionProgress, limits: DrainLimits,
                   flush: Callable[[list], None]) -> None:
    """Reads [start, end) of one partition and hands it to `flush` in bounded chunks.

    Chunks are written by one background thread while the next is read: consuming (librdkafka) and
    decoding/uploading (Arrow, sockets) release the GIL, so they overlap on two cores. At most one chunk is
    in flight, which keeps memory at about two chunks.
    """
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
            in_flight.result()  # re-raises the writer's error, if any
        in_flight = writer.submit(flush, records)

    try:
        while next_offset < progress.end:
            messages = consumer.consume(num_messages=limits.poll_batch, timeout=1.0)
            if not messages:
                position = consumer.position([TopicPartition(topic, progress.partition)])[0].offset
                if position >= progress.end:  # the rest were transaction markers or compacted away
                    break
                if time.monotonic() - last_progress > limits.stall_timeout_s:
                    raise DrainError(f"{topic}[{progress.partition}]: no records for {limits.stall_timeout_s:.0f}s "
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
    """Lets glibc keep freed heap for reuse instead of returning it to the OS at once.

    A drain allocates and frees about two chunks of record bytes per file; with glibc's default 128 KiB
    trim threshold every file page-faults its memory anew, which on two cores costs as much as decoding.
    """
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)


def drain_topic(consumer: Consumer, lake: Lake, topic: str, limits: DrainLimits = DrainLimits(),
                replay: Replay | None = None, now: datetime | None = None,
                accept_quarantine: bool = False) -> DrainResult:
    """Runs the protocol above for every partition of `topic`. The consumer must not auto-commit.

    Raises QuarantineLimitExceeded, committing nothing, when more than `limits.max_bad_share` of the slice was
    quarantined, unless `accept_quarantine` (a person's decision for this run).
    """
    _keep_freed_memory()
    ingested_at = now or datetime.now(UTC)
    metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise DrainError(f"topic {topic} does not exist")
    partitions = sorted(metadata.partitions)
    if replay is not None:
        _rewind(lake, consumer, topic, _replay_targets(consumer, topic, partitions, replay))
    committed = _committed(consumer, topic, partitions)
    result = DrainResult(topic, quarantine_uri=lake.uri(lake_layout.quarantine_prefix(topic)))
    for partition in partitions:
        low, high = _watermarks(consumer, topic, partition)
        start = committed[partition]
        if start == OFFSET_INVALID or start < 0:
            start = low
        elif start < low:
            raise DrainError(
                f"{topic}[{partition}]: offsets {start}..{low - 1} were removed by Kafka retention before "
                f"they were drained. To accept the gap, trigger cdc_drain with replay_topic={topic} and "
                f"replay_from_offsets={{\"{partition}\": {low}}}")
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
    reasons: Counter[str] = Counter()
    for writer in writers:
        result.quarantine_files += writer.quarantine_keys
        reasons.update(writer.reasons)
    result.quarantine_reasons = dict(reasons.most_common())
    try:
        _check_quarantine(result, limits, accept_quarantine)
    except QuarantineLimitExceeded:
        # Readers of the lake must not see rows whose offsets are not committed; the quarantine files stay for
        # people to inspect (the journals name them: the next run's recovery replaces them).
        lake.delete([key for w in writers for key in w.raw_keys])
        raise
    if any(p.end > p.start for p in result.partitions):
        _commit(consumer, topic, {p.partition: p.end for p in result.partitions if p.end > p.start})
        lake.delete([w.journal_key for w in writers if w.journal["dts"] or w.journal["quarantine"]])
    result.newest_source_ts = max((w.newest_source_ts for w in writers if w.newest_source_ts), default=None)
    result.remaining_lag = sum(_watermarks(consumer, topic, p.partition)[1] - p.end for p in result.partitions)
    return result
