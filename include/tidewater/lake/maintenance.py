"""Lake maintenance: compaction of small files and retention by age, on a DuckLake catalog (docs/lake-maintenance.md).

One pass (``run``), in this order, each step its own DuckLake transaction:

0. Flush: rows and deletions DuckLake inlined into the catalog (small inserts, a replay's deletions of a few rows)
   are written out to Parquet (``ducklake_flush_inlined_data``) for the change tables (schema ``main``), so they
   do not pile up in PostgreSQL. Like compaction it changes no row, row id, snapshot id or change (verified).
   The protocol's own tables (schema ``tidewater``: positions, rewritten by every commit) stay inlined.
1. Compact: ``ducklake_merge_adjacent_files`` per table merges the small Parquet files of many drains into larger
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

Maintenance conflicts with a drain's commit only per table (DuckLake); a conflicting step is retried, and the drain
retries its own commit (tidewater.lake.commit). Nothing here touches the drain positions.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb

from tidewater.config import Settings
from tidewater.lake.catalog import LAKE, sql_string

log = logging.getLogger(__name__)

ATTEMPTS = 5  # a step that conflicts with another commit (a drain, a replay) is tried this often


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
    return sum(con.execute(f"SELECT count(*) FROM ducklake_list_files({sql_string(alias)}, ?, schema => ?)",
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


def flush(con: duckdb.DuckDBPyConnection, alias: str = LAKE, schema: str = "main") -> dict[str, int]:
    """Writes the inlined rows of the schema's tables to Parquet; returns table → rows for tables that had some."""
    flushed: dict[str, int] = {}
    for table_schema, table in tables(con, alias):
        if table_schema != schema:
            continue
        rows = _retried(f"flushing inlined data of {schema}.{table}", alias, lambda t=table: con.execute(
            f"CALL ducklake_flush_inlined_data({sql_string(alias)}, schema_name => ?, table_name => ?)", [schema, t]
        ).fetchall())
        for _, name, count in rows:
            if count:
                flushed[f"{schema}.{name}"] = int(count)
    return flushed


def compact(con: duckdb.DuckDBPyConnection, alias: str = LAKE) -> dict[str, list[int]]:
    """Merges each table's adjacent small files; returns table → [files merged, files written] for tables it merged."""
    merged: dict[str, list[int]] = {}
    for schema, table in tables(con, alias):
        rows = _retried(f"compacting {schema}.{table}", alias, lambda s=schema, t=table: con.execute(
            f"CALL ducklake_merge_adjacent_files({sql_string(alias)}, ?, schema => ?)", [t, s]).fetchall())
        for _, name, processed, created in rows:
            if processed:
                merged[f"{schema}.{name}"] = [int(processed), int(created)]
    return merged


def expire(con: duckdb.DuckDBPyConnection, cutoff: datetime, alias: str = LAKE) -> list[int]:
    """Expires the snapshots older than the one current at `cutoff` (that one and every later one stay)."""
    anchor = con.execute(f"SELECT max(snapshot_time) FROM {alias}.snapshots() WHERE snapshot_time <= ?",
                         [cutoff]).fetchone()[0]
    if anchor is None:
        return []
    rows = _retried("expiring snapshots", alias, lambda: con.execute(
        f"SELECT snapshot_id FROM ducklake_expire_snapshots({sql_string(alias)}, older_than => ?)", [anchor]
    ).fetchall())
    return sorted(row[0] for row in rows)


def remove_files(con: duckdb.DuckDBPyConnection, cutoff: datetime, alias: str = LAKE) -> tuple[int, int]:
    """Deletes files scheduled for deletion before `cutoff` and orphaned files last written before it; returns
    (deleted scheduled files, deleted orphans)."""
    deleted = _retried("deleting unneeded files", alias, lambda: con.execute(
        f"SELECT count(*) FROM ducklake_cleanup_old_files({sql_string(alias)}, older_than => ?)", [cutoff]
    ).fetchone()[0])
    orphans = _retried("deleting orphaned files", alias, lambda: con.execute(
        f"SELECT count(*) FROM ducklake_delete_orphaned_files({sql_string(alias)}, older_than => ?)", [cutoff]
    ).fetchone()[0])
    return int(deleted), int(orphans)


def run(con: duckdb.DuckDBPyConnection, policy: Policy, alias: str = LAKE, now: datetime | None = None) -> Result:
    """One maintenance pass on the catalog attached as `alias` (as its writer): compact, expire, remove files."""
    if policy.keep_hours <= 0 or policy.file_min_age_hours <= 0:
        raise MaintenanceError(f"lake maintenance: keep_hours={policy.keep_hours} and file_min_age_hours="
                               f"{policy.file_min_age_hours} must both be > 0 (0 would expire snapshots the "
                               "warehouse has not read, or delete the files of a drain in flight)")
    now = now or datetime.now(UTC)
    result = Result(alias, files_before=data_files(con, alias))
    result.flushed = flush(con, alias)
    result.compacted = compact(con, alias)
    result.expired_snapshots = expire(con, now - timedelta(hours=policy.keep_hours), alias)
    result.deleted_files, result.deleted_orphans = remove_files(
        con, now - timedelta(hours=policy.file_min_age_hours), alias)
    result.files_after = data_files(con, alias)
    log.info("%s: %d → %d data files (inlined rows flushed %s, files merged %s), %d snapshots expired, %d unneeded "
             "and %d orphaned files deleted", alias, result.files_before, result.files_after, result.flushed,
             result.compacted, len(result.expired_snapshots), result.deleted_files, result.deleted_orphans)
    return result
