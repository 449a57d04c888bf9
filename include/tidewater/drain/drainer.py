"""Drains one Kafka CDC topic into its DuckLake change table with exactly-once effect.

The protocol (positions in the lake, one commit per drain, replays, recreated topics) is described in
tidewater.lake; this module runs it for one topic: it reads each partition's slice [position, end), decodes it
in bounded chunks, uploads the Parquet files and quarantine files, and hands them to the lake's commit.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from tidewater.config import ConfigError
from tidewater.drain.encoder import ChunkEncoder
from tidewater.lake import Lake, commit, maintenance
from tidewater.lake import objects as layout
from tidewater.tables import registry

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
    remaining_lag: int = 0  # records the drained partitions held past the slice when it was cut
    newest_source_ts: datetime | None = None
    quarantine_uri: str = ""
    quarantine_files: list[str] = field(default_factory=list)  # keys written by this run
    quarantine_reasons: dict[str, int] = field(default_factory=dict)  # reason → records, most frequent first
    accepted_quarantine: bool = False  # committed above max_bad_share because a person accepted it
    snapshot_id: int | None = None  # the lake snapshot of this drain's commit

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
            "snapshot_id": self.snapshot_id,
        }

    def as_dict(self) -> dict:
        return {**self.asset_extra(), "partitions": [asdict(p) for p in self.partitions]}


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30, cached=False)


def _commit_group(consumer: Consumer, topic: str, offsets: dict[int, int]) -> None:
    """The consumer group's offsets, for lag tools only (the lake's positions are the truth): failures are logged."""
    try:
        results = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                                  asynchronous=False) or []
    except KafkaException as error:
        log.warning("%s: the consumer group's offsets were not updated (lag tools may show stale lag): %s",
                    topic, error)
        return
    for tp in results:
        if tp.error is not None:
            log.warning("%s[%s]: the consumer group's offset was not updated: %s", topic, tp.partition, tp.error)


class _PartitionWriter:
    """Uploads one partition's slice: Parquet files for the change table, JSONL for the quarantine."""

    def __init__(self, lake: Lake, topic: str, progress: PartitionProgress, encoder: ChunkEncoder, run: str) -> None:
        self.lake, self.topic, self.progress, self.encoder, self.run = lake, topic, progress, encoder, run
        self.newest_source_ts: datetime | None = None
        self.quarantine: list[commit.QuarantineFile] = []
        self.files: list[commit.DataFile] = []
        self.keys: list[str] = []  # data files uploaded by this run
        self.reasons: Counter[str] = Counter()
        self.last_lsn: int | None = None  # of the last change written; an incremental snapshot's rows take it
        self._lake_asked = False  # whether the lake was asked for its newest LSN (None: it has none)

    def previous_lsn(self) -> int | None:
        """The LSN of the partition's change before the next one: this slice's last, else the lake's newest (asked
        once)."""
        if self.last_lsn is None and not self._lake_asked:
            self._lake_asked = True
            self.last_lsn = commit.newest_lsn(self.lake.con, layout.table_of(self.topic), self.progress.partition,
                                              self.progress.start)
        return self.last_lsn

    def write(self, records: list) -> None:
        chunk = self.encoder.encode(records, self.previous_lsn)
        if chunk.last_lsn is not None:
            self.last_lsn = chunk.last_lsn
        progress = self.progress
        progress.tombstones += chunk.tombstones
        if chunk.quarantined:
            offsets = [q.record.offset() for q in chunk.quarantined]
            key = layout.quarantine_key(self.topic, progress.partition, min(offsets), max(offsets))
            self.lake.bucket.put_jsonl(key, [q.as_json() for q in chunk.quarantined])
            self.quarantine.append(commit.QuarantineFile(key, progress.partition, min(offsets), max(offsets),
                                                         len(chunk.quarantined)))
            self.reasons.update(short_reason(q.error) for q in chunk.quarantined)
            progress.quarantined += len(chunk.quarantined)
            for q in chunk.quarantined[:3]:
                log.warning("quarantined %s[%s]@%s: %s", self.topic, progress.partition, q.record.offset(),
                            q.error)
        for file in chunk.files:
            key = layout.data_key(self.topic, file.dt, progress.partition, file.first_offset, file.last_offset,
                                  self.run)
            progress.bytes_written += self.lake.bucket.put_parquet(key, file.body)
            self.keys.append(key)
            self.files.append(commit.DataFile(self.lake.bucket.uri(key), file.schema, progress.partition, file.rows))
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
        "and the lake's positions did not move: every run fails the same way until this is resolved. "
        f"The records are in {result.quarantine_uri} "
        f"(raw key, value, headers, offset and the error of each). Reasons: {reasons}. "
        "Fix the cause (producer, connector settings or decoder) and let the next run drain them again, or "
        "accept them: trigger cdc_drain with {\"accept_quarantine_topic\": \"" + result.topic + "\"}, which lands "
        "the rest, commits, and reports the quarantined records by email.")


def _replay_targets(consumer: Consumer, lake: Lake, positions: commit.Positions, partitions: list[int],
                    replay: Replay, watermarks: dict[int, tuple[int, int]],
                    drained: Collection[int]) -> dict[int, int]:
    """The offsets a replay moves each partition of `drained` back to (by offsets: those the replay names);
    refuses targets at or after the lake's position (except exactly Kafka's low watermark when the lake is below it:
    that accepts a gap retention made)."""
    topic = positions.topic
    if replay.offsets is not None:
        unknown = set(replay.offsets) - set(partitions)
        if unknown:
            raise DrainError(f"replay of {topic}: partitions {sorted(unknown)} do not exist "
                             f"(the topic has {sorted(partitions)})")
        targets = {p: offset for p, offset in replay.offsets.items() if p in drained}
    else:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, replay.timestamp_ms) for p in sorted(drained)], timeout=30)
        targets = {tp.partition: (tp.offset if tp.offset >= 0 else watermarks[tp.partition][1]) for tp in found}
    for partition, target in sorted(targets.items()):
        low, _ = watermarks[partition]
        position = positions.offsets.get(partition, low)
        if target < low:
            raise DrainError(f"replay of {topic}[{partition}] from offset {target}: Kafka keeps only offsets "
                             f">= {low} (older records were removed by retention)")
        if target >= position and not (position < low and target == low):
            raise DrainError(
                f"replay of {topic}[{partition}] from offset {target}: the lake holds this partition up to offset "
                f"{position - 1} and continues at {position}. A replay only goes back (an offset below {position}, "
                "or a time before the changes it holds); moving forward would skip records that never landed.")
        targets[partition] = commit.quarantine_start(lake.con, topic, partition, target)
    return targets


def _positions(lake: Lake, topic: str, table: str, topic_id: str, low: dict[int, int],
               accept_recreated_topic: bool) -> commit.Positions:
    """The lake's positions of `topic`, recording it first if the lake has never drained it (or a person accepted
    that it was recreated). Fails on a topic id the lake does not know."""
    positions = commit.read_positions(lake.con, topic)
    if positions.topic_id is None:
        return _start_topic(lake, table, positions, topic_id, low)
    if positions.topic_id != topic_id:
        if not accept_recreated_topic:
            raise DrainError(
                f"{topic} was deleted and created again: Kafka's topic id is {topic_id}, the lake drained "
                f"{positions.topic_id} up to offsets {positions.offsets}. The new topic reuses offsets, so nothing "
                "was drained. If the new topic is the same source (e.g. the connector was reset), trigger "
                f"cdc_drain with {{\"accept_recreated_topic\": \"{topic}\"}}: its changes land from its low watermark "
                "and the old ones stay in the lake.")
        log.warning("%s: accepting the recreated topic %s (was %s)", topic, topic_id, positions.topic_id)
        return _start_topic(lake, table, positions, topic_id, low)
    return positions


def _start_topic(lake: Lake, table: str, positions: commit.Positions, topic_id: str,
                 low: dict[int, int]) -> commit.Positions:
    """commit.start_topic; when the drain of another partition of the topic started it first (the same topic id),
    its positions."""
    try:
        return commit.start_topic(lake.con, table, positions, topic_id, low)
    except commit.CommitConflict:
        started = commit.read_positions(lake.con, positions.topic)
        if started.topic_id != topic_id:
            raise
        return started


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
            # No more than the slice holds: librdkafka returns a batch once it is full, so asking for more than is
            # left waited out the whole timeout at the end of every slice.
            messages = consumer.consume(num_messages=max(1, min(limits.poll_batch, progress.end - next_offset)),
                                        timeout=1.0)
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


def may_be_gone(table: str) -> frozenset[str] | None:
    """The lake columns of `table` its records may lack (the registry's dropped columns and rename targets), or
    None for a table the registry does not have (a scratch topic): then a missing column is not checked."""
    try:
        entry = registry().table(table)
    except ConfigError:
        return None
    return frozenset(entry.dropped) | frozenset(entry.renamed.values())


def drain_topic(consumer: Consumer, lake: Lake, topic: str, topic_id: str, limits: DrainLimits = DrainLimits(),
                replay: Replay | None = None, now: datetime | None = None, accept_quarantine: bool = False,
                accept_recreated_topic: bool = False, partitions: Collection[int] | None = None,
                until: Mapping[int, int] | None = None) -> DrainResult:
    """Drains `partitions` of `topic` (None: all; its Kafka topic id is `topic_id`) from the lake's positions, in one
    lake commit, up to the high watermarks now or, where `until` gives one, to that offset (a run's slices cut at
    one instant for every topic). Drains of the topic's other partitions may run and commit at the same time.

    Raises QuarantineLimitExceeded, committing nothing, when more than `limits.max_bad_share` of the slice was
    quarantined, unless `accept_quarantine` (a person's decision for this run); commit.CommitConflict when another
    drain of one of these partitions committed first. Either way the run's data files are removed.
    """
    _keep_freed_memory()
    ingested_at = now or datetime.now(UTC)
    metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
    if metadata is None or metadata.error is not None:
        raise DrainError(f"topic {topic} does not exist")
    every_partition = sorted(metadata.partitions)
    drained = every_partition if partitions is None else sorted(set(partitions))
    if not set(drained) <= set(every_partition):
        raise DrainError(f"{topic}: partitions {sorted(set(drained) - set(every_partition))} do not exist (the topic "
                         f"has {every_partition})")
    table = layout.table_of(topic)
    watermarks = {p: _watermarks(consumer, topic, p) for p in every_partition}
    commit.ensure_tables(lake.con)
    positions = _positions(lake, topic, table, topic_id, {p: low for p, (low, _) in watermarks.items()},
                           accept_recreated_topic)
    if replay is not None:
        if lake.metadata is None:
            raise DrainError(f"replay of {topic}: the lake session has no catalog connection (Lake.metadata), which "
                             "a replay needs for the rewrite lock it holds against compaction")
        with maintenance.rewrite_lock(lake.metadata):
            targets = _replay_targets(consumer, lake, positions, every_partition, replay, watermarks, drained)
            if targets:
                commit.rewind(lake.con, table, positions, targets)
        if targets:
            log.warning("%s: replay from offsets %s (the lake was at %s)", topic, targets, positions.offsets)
        positions = commit.read_positions(lake.con, topic)
    result = DrainResult(topic, quarantine_uri=lake.bucket.uri(layout.quarantine_prefix(topic)))
    for partition in drained:
        low, high = watermarks[partition]
        start = positions.offsets.get(partition, low)
        if start < low:
            raise DrainError(
                f"{topic}[{partition}]: offsets {start}..{low - 1} were removed by Kafka retention before "
                f"they were drained. To accept the gap, trigger cdc_drain with replay_topic={topic} and "
                f"replay_from_offsets={{\"{partition}\": {low}}}")
        if start > high:
            raise DrainError(f"{topic}[{partition}]: the lake continues at offset {start} but Kafka's partition "
                             f"ends at {high}: records the lake holds are gone from Kafka (was the topic recreated "
                             "with the same id, or its records deleted?). Nothing was drained.")
        end = min(high, start + limits.max_records_per_run, (until or {}).get(partition, high))
        result.partitions.append(PartitionProgress(partition, start, max(start, end)))
    encoder = ChunkEncoder(ingested_at)
    run = uuid.uuid4().hex[:12]
    writers: list[_PartitionWriter] = []
    try:
        for progress in result.partitions:
            if progress.end <= progress.start:
                continue
            writer = _PartitionWriter(lake, topic, progress, encoder, run)
            writers.append(writer)
            _consume_slice(consumer, topic, progress, limits, writer.write)
        reasons: Counter[str] = Counter()
        for writer in writers:
            result.quarantine_files += [q.key for q in writer.quarantine]
            reasons.update(writer.reasons)
        result.quarantine_reasons = dict(reasons.most_common())
        _check_quarantine(result, limits, accept_quarantine)
        if writers:
            result.snapshot_id = commit.commit_drain(
                lake.con, table, positions, {p.partition: p.end for p in result.partitions if p.end > p.start},
                [f for w in writers for f in w.files], [q for w in writers for q in w.quarantine],
                may_be_gone(table))
    except BaseException:
        # Nothing of this run is in the lake: its data files go (quarantine files stay for people to read; the next
        # drain of the slice writes them again under the same names).
        keys = [key for w in writers for key in w.keys]
        with contextlib.suppress(Exception):
            lake.bucket.delete(keys)
        raise
    if writers:
        _commit_group(consumer, topic, {p.partition: p.end for p in result.partitions if p.end > p.start})
    result.newest_source_ts = max((w.newest_source_ts for w in writers if w.newest_source_ts), default=None)
    # From the watermarks read before consuming: asking the broker again waited behind the consumer's last fetch.
    result.remaining_lag = sum(watermarks[p.partition][1] - p.end for p in result.partitions)
    return result
