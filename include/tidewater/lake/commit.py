"""The drain's commit protocol on the DuckLake catalog (the protocol itself: tidewater.lake's docstring).

Tables the protocol keeps in the ``tidewater`` schema of the lake catalog:

  drain_positions   (topic, topic_id, partition, next_offset, first_row_id, committed_at)
                    the next offset to drain of each partition: the lake's only record of progress
  quarantine_files  (key, topic, partition, first_offset, last_offset, records, committed_at)
                    the quarantine files a drain's commit accepted
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from tidewater.drain.debezium import SPECIAL_SUFFIX
from tidewater.lake.catalog import LAKE
from tidewater.sqltext import identifier, literal

log = logging.getLogger(__name__)

SCHEMA = f"{LAKE}.tidewater"
POSITIONS = f"{SCHEMA}.drain_positions"
QUARANTINE_FILES = f"{SCHEMA}.quarantine_files"
CHANGES = f"{LAKE}.main"  # one change table per source table
COMMIT_ATTEMPTS = 20  # commits of other topics conflict with ours (DuckLake detects conflicts per table)


class LakeError(RuntimeError):
    """The lake refused a change; the message says what happened and what to do."""


class CommitConflict(LakeError):
    """Another drain of the same topic committed first: nothing of this drain is in the lake."""


@dataclass(frozen=True)
class DataFile:
    """A Parquet file written for a change table, not yet part of the lake."""

    uri: str
    schema: pa.Schema
    partition: int
    rows: int


@dataclass(frozen=True)
class QuarantineFile:
    key: str
    partition: int
    first_offset: int
    last_offset: int
    records: int


@dataclass
class Positions:
    """Where the lake says each partition of a topic continues; topic_id is the Kafka topic they belong to."""

    topic: str
    topic_id: str | None = None
    offsets: dict[int, int] = field(default_factory=dict)
    first_row_id: int = 0  # the first change-table row of this incarnation of the topic


def ensure_tables(con: duckdb.DuckDBPyConnection, attempts: int = 3) -> None:
    """Creates the protocol's tables if the catalog is new. Two drains starting at once on a new catalog both
    create them: the one that loses DuckLake's conflict finds them made and goes on."""
    statements = (
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"CREATE TABLE IF NOT EXISTS {POSITIONS} (topic VARCHAR NOT NULL, topic_id VARCHAR NOT NULL, "
        "partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, first_row_id BIGINT NOT NULL, "
        "committed_at TIMESTAMPTZ NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {QUARANTINE_FILES} (key VARCHAR NOT NULL, topic VARCHAR NOT NULL, "
        "partition INTEGER NOT NULL, first_offset BIGINT NOT NULL, last_offset BIGINT NOT NULL, "
        "records INTEGER NOT NULL, committed_at TIMESTAMPTZ NOT NULL)",
    )
    for statement in statements:
        for attempt in range(attempts):
            try:
                con.execute(statement)
                break
            except duckdb.Error as error:
                if attempt == attempts - 1 or not ("another transaction has created" in str(error)
                                                   or _is_conflict(error)):
                    raise


def protocol_tables_exist(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the catalog has the protocol's tables (a drain has committed): readers of a read-only attached lake
    check this instead of creating them (ensure_tables)."""
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND "
                       "table_schema = 'tidewater' AND table_name IN ('drain_positions', 'quarantine_files')",
                       [LAKE]).fetchone()[0] == 2


def read_positions(con: duckdb.DuckDBPyConnection, topic: str) -> Positions:
    rows = con.execute(f"SELECT topic_id, partition, next_offset, first_row_id FROM {POSITIONS} WHERE topic = ?",
                       [topic]).fetchall()
    positions = Positions(topic)
    for topic_id, partition, next_offset, first_row_id in rows:
        positions.topic_id, positions.first_row_id = topic_id, first_row_id
        positions.offsets[partition] = next_offset
    return positions


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str] | None:
    """A change table's columns (name → DuckDB type), or None if it does not exist."""
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = ? "
                       "AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                       [LAKE, table]).fetchall()
    return dict(rows) if rows else None


def newest_lsn(con: duckdb.DuckDBPyConnection, table: str, partition: int, before_offset: int) -> int | None:
    """The newest LSN the change table holds from Kafka partition `partition` before offset `before_offset`
    (None: none)."""
    if table_columns(con, table) is None:
        return None
    return con.execute(f"SELECT max(_lsn) FROM {CHANGES}.{identifier(table)} WHERE _kafka_partition = ? "
                       "AND _kafka_offset < ?", [partition, before_offset]).fetchone()[0]


def _duckdb_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> dict[str, str]:
    relation = con.from_arrow(schema.empty_table())
    return {name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)}


_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")


def widens(old: str, new: str) -> bool:
    """Whether DuckDB type `new` holds every value of `old` (a promotion DuckLake makes in place: a wider integer,
    DOUBLE for FLOAT, a DECIMAL with at least as many integer and fraction digits)."""
    if old in _INTEGERS and new in _INTEGERS:
        return _INTEGERS.index(new) >= _INTEGERS.index(old)
    if (old, new) == ("FLOAT", "DOUBLE"):
        return True
    old_decimal, new_decimal = _DECIMAL.fullmatch(old), _DECIMAL.fullmatch(new)
    if old_decimal and new_decimal:
        (p, s), (q, t) = map(int, old_decimal.groups()), map(int, new_decimal.groups())
        return t >= s and q - t >= p - s
    return old == new


def _ensure_columns(con: duckdb.DuckDBPyConnection, table: str, files: list[DataFile],
                    may_be_gone: frozenset[str] | None = None) -> None:
    """Creates the change table, or evolves it in the open transaction for the files' records: a new column is
    added; a column whose type widened (int → bigint, numeric(10,2) → numeric(14,4)) is widened in place (a
    narrower type in the records fits as it is). Refuses (LakeError, nothing committed) a type that does not
    widen, and a column the records lack (dropped or renamed in the source) unless `may_be_gone` names it:
    the registry's `dropped` and rename targets (None: the table is not registered, not checked)."""
    wanted: dict[str, str] = {}
    for file in files:
        for name, kind in _duckdb_types(con, file.schema).items():
            wanted.setdefault(name, kind)
    existing = table_columns(con, table)
    target = f"{CHANGES}.{identifier(table)}"
    if existing is None:
        columns = ", ".join(f"{identifier(name)} {kind}" for name, kind in wanted.items())
        con.execute(f"CREATE TABLE {target} ({columns})")
        return
    if may_be_gone is not None:
        gone = [name for name in existing if name not in wanted
                and name.removesuffix(SPECIAL_SUFFIX) not in may_be_gone]
        if gone:
            raise LakeError(
                f"change table {table}: the new records have no column {', '.join(gone)} (dropped or renamed in "
                "PostgreSQL). Nothing was committed. Say which in the table registry (dbt/models/staging/"
                f"__sources.yml, table {table}): `dropped: [{gone[0]}]` keeps its history, null from now on; for a "
                f"rename, `renamed: {{<new name>: {gone[0]}}}` keeps one warehouse column. Then drain again")
    for name, kind in wanted.items():
        if name not in existing:
            con.execute(f"ALTER TABLE {target} ADD COLUMN {identifier(name)} {kind}")
        elif widens(existing[name], kind) and existing[name] != kind:
            con.execute(f"ALTER TABLE {target} ALTER {identifier(name)} TYPE {kind}")
        elif not widens(kind, existing[name]):
            raise LakeError(f"change table {table}: column {name} is {existing[name]} in the lake but {kind} in the "
                            "new records, which does not widen it (the source column's type changed). Nothing was "
                            "committed. Add the new type as a new source column (and drop the old one), or rebuild "
                            f"the table from a fresh snapshot (`tidewater tables capture {table}` after moving the "
                            "lake's change table away), and drain again")


def _set_positions(con: duckdb.DuckDBPyConnection, positions: Positions, ends: dict[int, int]) -> None:
    """Writes every partition row of the topic, `positions` (read in the open transaction) moved to `ends`: two
    commits of one topic always conflict, and the one retried re-reads the other's positions."""
    con.execute(f"DELETE FROM {POSITIONS} WHERE topic = ?", [positions.topic])
    offsets = positions.offsets | ends
    con.executemany(f"INSERT INTO {POSITIONS} VALUES (?, ?, ?, ?, ?, now())",
                    [[positions.topic, positions.topic_id, p, o, positions.first_row_id]
                     for p, o in sorted(offsets.items())])


def _is_conflict(error: duckdb.Error) -> bool:
    return "Transaction conflict" in str(error)


def _transaction(con: duckdb.DuckDBPyConnection, topic: str, expected: Positions, work,
                 partitions: Collection[int] | None = None) -> int:
    """Runs `work(current)` and commits, retrying while the conflicts are commits of other topics or of other
    partitions of this one.

    Raises CommitConflict when the topic's id or the positions of `partitions` (None: all the topic's) are no
    longer `expected`. Returns the new snapshot id.
    """
    def of(positions: Positions) -> dict[int, int | None]:
        if partitions is None:
            return positions.offsets
        return {p: positions.offsets.get(p) for p in sorted(partitions)}

    for attempt in range(COMMIT_ATTEMPTS):
        con.execute("BEGIN TRANSACTION")
        try:
            current = read_positions(con, topic)
            if of(current) != of(expected) or current.topic_id != expected.topic_id:
                raise CommitConflict(
                    f"{topic}: another drain of this topic committed first (the lake's positions moved from "
                    f"{of(expected)} to {of(current)} while this drain ran). Nothing of this run is in "
                    "the lake and its files were removed; the next run continues from the new positions.")
            work(current)
            con.execute("COMMIT")
            return con.execute(f"SELECT id FROM {LAKE}.current_snapshot()").fetchone()[0]
        except duckdb.Error as error:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            if not _is_conflict(error):
                raise
            log.info("%s: commit conflicted with another commit (attempt %d): %s", topic, attempt + 1,
                     str(error).splitlines()[0])
            time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise
    raise LakeError(f"{topic}: the lake's commit conflicted {COMMIT_ATTEMPTS} times with other commits; nothing "
                    "was committed. The next run tries again.")


def commit_drain(con: duckdb.DuckDBPyConnection, table: str, started: Positions, ends: dict[int, int],
                 files: list[DataFile], quarantine: list[QuarantineFile],
                 may_be_gone: frozenset[str] | None = None) -> int:
    """One DuckLake transaction: the files join the change table, the quarantine files are accepted and the
    positions of the partitions in `ends` move from `started` to `ends` — all or nothing. Commits of the topic's
    other partitions may come between (CommitConflict only if one of these moved). Returns the snapshot id."""

    def work(current: Positions) -> None:
        if files:
            _ensure_columns(con, table, files, may_be_gone)
            # One call for all files: DuckLake reads their footers in parallel (bench/drain_benchmark.py).
            con.execute(f"CALL ducklake_add_data_files({literal(LAKE)}, ?, ?, schema => 'main', "
                        "allow_missing => true)", [table, [file.uri for file in files]])
        if quarantine:
            con.executemany(f"INSERT INTO {QUARANTINE_FILES} VALUES (?, ?, ?, ?, ?, ?, now())",
                            [[q.key, started.topic, q.partition, q.first_offset, q.last_offset, q.records]
                             for q in quarantine])
        _set_positions(con, current, ends)

    return _transaction(con, started.topic, started, work, ends.keys())


def start_topic(con: duckdb.DuckDBPyConnection, table: str, positions: Positions, topic_id: str,
                starts: dict[int, int]) -> Positions:
    """Records a topic the lake has not drained (or a recreated one a person accepted): its id, where each partition
    starts, and the first row id its changes get. Returns the new positions."""
    def work(current: Positions) -> None:
        columns = table_columns(con, table)
        next_row = con.execute(f"SELECT coalesce(max(rowid) + 1, 0) FROM {CHANGES}.{identifier(table)}").fetchone()[0] \
            if columns is not None else 0
        current.offsets, current.topic_id, current.first_row_id = {}, topic_id, next_row
        _set_positions(con, current, starts)

    _transaction(con, positions.topic, positions, work)
    return read_positions(con, positions.topic)


def rewind(con: duckdb.DuckDBPyConnection, table: str, positions: Positions, targets: dict[int, int]) -> int:
    """Replay: in one transaction, deletes the changes and accepted quarantine files of the partitions in `targets`
    from each target offset on and moves their positions back to the targets. Returns the snapshot id."""
    def work(current: Positions) -> None:
        exists = table_columns(con, table) is not None
        for partition, target in targets.items():
            if exists:
                con.execute(f"DELETE FROM {CHANGES}.{identifier(table)} WHERE _kafka_topic = ? "
                            "AND _kafka_partition = ? AND _kafka_offset >= ? AND rowid >= ?",
                            [current.topic, partition, target, current.first_row_id])
            con.execute(f"DELETE FROM {QUARANTINE_FILES} WHERE topic = ? AND partition = ? AND last_offset >= ?",
                        [current.topic, partition, target])
        _set_positions(con, current, targets)

    return _transaction(con, positions.topic, positions, work, targets.keys())


def quarantine_start(con: duckdb.DuckDBPyConnection, topic: str, partition: int, target: int) -> int:
    """`target`, moved back to the first offset of an accepted quarantine file that straddles it (a replay
    replaces whole quarantine files)."""
    straddling = con.execute(f"SELECT min(first_offset) FROM {QUARANTINE_FILES} WHERE topic = ? AND partition = ? "
                             "AND first_offset < ? AND last_offset >= ?", [topic, partition, target, target]).fetchone()
    return target if straddling[0] is None else straddling[0]
