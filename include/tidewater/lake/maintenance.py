"""Lake maintenance: compaction of small files and retention by age, on a DuckLake catalog (docs/lake-maintenance.md).

One pass (``run``), in this order, each step its own DuckLake transaction:

0. Flush: rows and deletions DuckLake inlined into the catalog (small inserts, a replay's deletions) are written out
   to Parquet (``ducklake_flush_inlined_data``) for the change tables (schema ``main``), so they do not pile up in
   PostgreSQL. Like compaction it changes no row, row id, snapshot id or change (verified). The protocol's own
   tables (schema ``tidewater``: positions, rewritten by every commit) are neither flushed nor compacted.
1. Compact: ``ducklake_merge_adjacent_files`` per change table merges the small Parquet files of many drains into larger
   ones. It changes no row and nothing a reader can observe (verified on DuckLake 1.5.5, tests/integration/
   test_lake_maintenance.py): every row keeps its ``rowid`` and its ``snapshot_id`` (the snapshot that inserted
   it), time travel to every kept snapshot reads the same rows, and ``ducklake_table_changes`` returns the same
   changes for every window, the compaction's own snapshot contributing none. So the warehouse, which reads the
   change tables incrementally by snapshot and deletes replayed rows by ``rowid``, never loads a row twice.
   Files with deleted rows are left as they are. ``ducklake_rewrite_data_files`` is NOT used: it gives the rows it
   rewrites a new snapshot id and shows them as updates in the change feed.
2. Expire: snapshots older than ``keep_hours`` are expired, except the one that was current at the cutoff, so the
   lake as of any time in the last ``keep_hours`` stays readable. The warehouse reads
   ``ducklake_table_changes(start, end)`` from the first snapshot it has not loaded: a warehouse that built within
   the last ``keep_hours`` (default 7 days) therefore finds every snapshot it has not read. One that did not
   (stopped longer than that) fails its staging build naming the snapshots it missed and asks for a full refresh
   (dbt/macros/changes.sql).
3. Remove files: files that compaction or expiry made unneeded (DuckLake's files scheduled for deletion) and
   files under the catalog's data path no snapshot references (orphans: a drain killed or beaten before its commit,
   a compaction that failed) are deleted once ``file_min_age_hours`` old. A drain's files are uploaded before its
   commit registers them, so an orphan younger than that (a drain in flight) always stays; a reader that started
   on a snapshot just before compaction or expiry keeps its files for as long.

Concurrency (verified on DuckLake 1.5.5 with two connections): a drain's commit (inserts) and a compaction of the same
table may overlap in either order and both commit with every row there. A DELETE that overlaps a flush or compaction
of its table, in either order, also commits, but is LOST: DuckLake inlines deletions (whatever
``data_inlining_row_limit`` says), records them against the merged-away file, and does not count them as a conflict.
The only deletes of change tables are a replay's (tidewater.lake.commit.rewind), so steps 0 and 1 run per change
table inside ``rewrite_lock`` (a PostgreSQL advisory lock on the catalog database), which a replay must hold too.
Other conflicts are retried, and the drain retries its own commit. Nothing here touches the protocol's tables.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import psycopg

from tidewater.config import Connection, Settings
from tidewater.lake.catalog import LAKE
from tidewater.sqltext import literal

log = logging.getLogger(__name__)

ATTEMPTS = 5  # a step that conflicts with another commit (a drain, a replay) is tried this often
REWRITE_LOCK = "tidewater.lake.rewrite"  # the advisory lock compaction and replays take (rewrite_lock)


class MaintenanceError(RuntimeError):
    """A maintenance step failed; the message names the catalog, the step and what to do."""


@dataclass(frozen=True)
class Policy:
    """How long what stays: snapshots ``keep_hours``; unneeded and orphaned files ``file_min_age_hours``."""

    keep_hours: float = 168.0
    file_min_age_hours: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(settings.lake_keep_hours, settings.lake_file_min_age_hours)


@dataclass
class Result:
    """What one pass did on one catalog."""

    catalog: str
    files_before: int = 0
    files_after: int = 0
    flushed: dict[str, int] = field(default_factory=dict)  # table → inlined rows written out (not deletions)
    compacted: dict[str, list[int]] = field(default_factory=dict)  # table → [files merged, files written]
    expired_snapshots: list[int] = field(default_factory=list)
    deleted_files: int = 0  # scheduled for deletion by compaction or expiry
    deleted_orphans: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def tables(con: duckdb.DuckDBPyConnection, alias: str) -> list[tuple[str, str]]:
    """The catalog's tables as (schema, table)."""
    return con.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = ? "
                       "AND table_type = 'BASE TABLE' ORDER BY ALL", [alias]).fetchall()


def data_files(con: duckdb.DuckDBPyConnection, alias: str) -> int:
    """Data files the catalog's current snapshot references, over all tables."""
    return sum(con.execute(f"SELECT count(*) FROM ducklake_list_files({literal(alias)}, ?, schema => ?)",
                           [table, schema]).fetchone()[0] for schema, table in tables(con, alias))


def _retried(step: str, alias: str, call):
    """`call()`, retried while it conflicts with another transaction on the catalog."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return call()
        except duckdb.Error as error:  # each step runs in autocommit: a failed one left nothing behind
            if "conflict" not in str(error).lower() or attempt == ATTEMPTS:
                raise MaintenanceError(f"lake maintenance of catalog {alias!r}: {step} failed ({error}). Nothing "
                                       "of this step changed what readers see; the next run tries again") from error
            log.info("%s: %s conflicted with another commit (attempt %d), retrying", alias, step, attempt)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


@contextmanager
def rewrite_lock(metadata: Connection) -> Iterator[None]:
    """Holds the catalog's rewrite lock: a PostgreSQL advisory lock on the catalog database `metadata` names.

    DuckLake 1.5.5 loses a deletion that overlaps a compaction of its table (see the module docstring), so a
    flush or merge of a change table and a replay's deletions (tidewater.lake.commit.rewind) must never overlap:
    each holds this lock from before its transaction until after it ends. Waits while another holder has it.
    """
    with psycopg.connect(metadata.postgres_conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", [REWRITE_LOCK])
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", [REWRITE_LOCK])


def rewrite(con: duckdb.DuckDBPyConnection, alias: str, table: str, schema: str = "main") -> tuple[int, list[int]]:
    """Writes the table's inlined rows and deletions to Parquet, then merges its adjacent small files; returns
    (inlined rows flushed, [files merged, files written]). Hold `rewrite_lock` around it."""
    flushed = _retried(f"flushing inlined data of {schema}.{table}", alias, lambda: con.execute(
        f"CALL ducklake_flush_inlined_data({literal(alias)}, schema_name => ?, table_name => ?)", [schema, table]
    ).fetchall())
    merged = _retried(f"compacting {schema}.{table}", alias, lambda: con.execute(
        f"CALL ducklake_merge_adjacent_files({literal(alias)}, ?, schema => ?)", [table, schema]).fetchall())
    return (sum(int(row[2]) for row in flushed),
            [sum(int(row[2]) for row in merged), sum(int(row[3]) for row in merged)])


def expire(con: duckdb.DuckDBPyConnection, cutoff: datetime, alias: str = LAKE) -> list[int]:
    """Expires the snapshots older than the one current at `cutoff` (that one and every later one stay)."""
    anchor = con.execute(f"SELECT max(snapshot_time) FROM {alias}.snapshots() WHERE snapshot_time <= ?",
                         [cutoff]).fetchone()[0]
    if anchor is None:
        return []
    rows = _retried("expiring snapshots", alias, lambda: con.execute(
        f"SELECT snapshot_id FROM ducklake_expire_snapshots({literal(alias)}, older_than => ?)", [anchor]
    ).fetchall())
    return sorted(row[0] for row in rows)


def remove_files(con: duckdb.DuckDBPyConnection, cutoff: datetime, alias: str = LAKE) -> tuple[int, int]:
    """Deletes files scheduled for deletion before `cutoff` and orphaned files last written before it; returns
    (deleted scheduled files, deleted orphans)."""
    deleted = _retried("deleting unneeded files", alias, lambda: con.execute(
        f"SELECT count(*) FROM ducklake_cleanup_old_files({literal(alias)}, older_than => ?)", [cutoff]
    ).fetchone()[0])
    orphans = _retried("deleting orphaned files", alias, lambda: con.execute(
        f"SELECT count(*) FROM ducklake_delete_orphaned_files({literal(alias)}, older_than => ?)", [cutoff]
    ).fetchone()[0])
    return int(deleted), int(orphans)


def run(con: duckdb.DuckDBPyConnection, policy: Policy, alias: str = LAKE, now: datetime | None = None,
        lock: Callable[[], AbstractContextManager] = nullcontext) -> Result:
    """One maintenance pass on the catalog attached as `alias` (as its writer): flush and compact each change table
    (schema ``main``) inside `lock()` (``rewrite_lock`` of the catalog: the DAG passes it), expire, remove files."""
    if policy.keep_hours <= 0 or policy.file_min_age_hours <= 0:
        raise MaintenanceError(f"lake maintenance: keep_hours={policy.keep_hours} and file_min_age_hours="
                               f"{policy.file_min_age_hours} must both be > 0 (0 would expire snapshots the "
                               "warehouse has not read, or delete the files of a drain in flight)")
    now = now or datetime.now(UTC)
    result = Result(alias, files_before=data_files(con, alias))
    for schema, table in tables(con, alias):
        if schema != "main":  # the protocol's own tables (positions) are left alone
            continue
        with lock():
            flushed, (merged, written) = rewrite(con, alias, table, schema)
        if flushed:
            result.flushed[f"{schema}.{table}"] = flushed
        if merged:
            result.compacted[f"{schema}.{table}"] = [merged, written]
    result.expired_snapshots = expire(con, now - timedelta(hours=policy.keep_hours), alias)
    result.deleted_files, result.deleted_orphans = remove_files(
        con, now - timedelta(hours=policy.file_min_age_hours), alias)
    result.files_after = data_files(con, alias)
    log.info("%s: %d → %d data files (inlined rows flushed %s, files merged %s), %d snapshots expired, %d unneeded "
             "and %d orphaned files deleted", alias, result.files_before, result.files_after, result.flushed,
             result.compacted, len(result.expired_snapshots), result.deleted_files, result.deleted_orphans)
    return result
