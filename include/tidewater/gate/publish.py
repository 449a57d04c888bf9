"""Publication of the marts as snapshots of the marts' DuckLake catalog (docs/marts.md).

Readers attach the marts catalog read-only with their own credentials (``open_published``, or the duckdb CLI
as docs/marts.md shows) and read ``marts.main.<mart>``. What they can rely on:

- A publication is ONE DuckLake transaction: it replaces every mart (tidewater.gate.suites.mart_names, in
  ``marts.main``) and the figures the gate checked them against (``marts.gate.source_state``) from a candidate
  that passed the gate, and adds a row to ``marts.tidewater.publications``. A reader's transaction
  reads one snapshot, so it sees the previous publication or the new one, never a mix and never a candidate
  that failed. A publish killed before its commit changes nothing readers see; the files it wrote are orphans
  that retention deletes.
- Each publication's snapshot names it in the commit's message and extra info (``marts.snapshots()``), so
  ``history`` lists the publications still kept and their snapshot ids.
- Rollback publishes an earlier publication again: one transaction that replaces every table above with its
  rows ``AT (VERSION => <that publication's snapshot>)``, recorded like a publish (action ``rollback``).
- Retention is by age: a snapshot stays readable until ``marts_keep_hours`` after a newer one replaced it, so
  a reader whose transaction started that recently keeps reading; older snapshots are expired, their files
  deleted, and files of publishes that never committed are deleted once that old. A publish runs retention
  once a snapshot is overdue by a tenth of the keep time (``retention_due``), the lake_maintenance DAG daily.
- After the commit, ``marts/_current.json`` gets the publication's summary for monitors (freshness_monitor
  reads ``published_at``). Readers do not need it; a crash right after the commit leaves it one publication
  behind until the next one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import duckdb

from tidewater.config import ConfigError, Settings, get_connection
from tidewater.gate.stage import candidate_path, discard_candidate
from tidewater.gate.suites import mart_names
from tidewater.lake import Lake, catalog
from tidewater.lake.objects import ObjectStoreError
from tidewater.marts_reader import NothingPublished, open_read_only
from tidewater.sqltext import literal

PREFIX = "marts"  # the marts catalog's data files in the lake bucket (catalog.DATA_PREFIX)
POINTER_KEY = f"{PREFIX}/_current.json"  # the last publication's summary, for monitors
PUBLICATIONS = f"{catalog.MARTS}.tidewater.publications"
SOURCE_STATE = ("gate", "source_state")  # the gate's source figures, published beside the marts
AUTHOR = "tidewater"
Action = Literal["publish", "rollback"]


def published_tables(settings: Settings) -> tuple[tuple[str, str], ...]:
    """What a publication replaces, as (schema, table): the marts, and the gate's source figures beside them."""
    return (*(("main", table) for table in mart_names(settings)), SOURCE_STATE)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Publication:
    """One publication's snapshot of the marts catalog."""

    publication_id: str
    snapshot_id: int
    published_at: datetime
    action: Action
    rows: dict[str, int]

    def summary(self) -> dict:
        """What the publish task returns (XCom) and ``marts/_current.json`` holds: JSON only."""
        return {"publication_id": self.publication_id, "snapshot_id": self.snapshot_id,
                "published_at": self.published_at.isoformat(), "action": self.action, "rows": self.rows}


@dataclass(frozen=True)
class Retention:
    """What one retention pass removed."""

    expired_snapshots: list[int]
    deleted_files: int
    deleted_orphans: int


def open_marts(settings: Settings, with_lake: bool = False) -> Lake:
    """The marts catalog attached as its writer (``marts``), and the lake bucket (for the monitors' summary);
    `with_lake`: the lake catalog too (``lake``, as its writer)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from tidewater.lake.objects import Bucket

    return Lake(catalog.connect(settings, catalog.MARTS, *([catalog.LAKE] if with_lake else [])),
                Bucket(S3Hook(aws_conn_id=settings.lake_conn_id).get_conn(), settings.lake_bucket))


def open_published(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A reader's connection: the marts catalog attached read-only as the marts reader (its catalog and S3
    connections), and in use (``select * from fct_orders`` reads ``marts.main.fct_orders``). Raises
    NothingPublished before the first publication."""
    return open_read_only(get_connection(settings.marts_reader_conn_id),
                          get_connection(settings.marts_reader_s3_conn_id), catalog.data_path(settings, catalog.MARTS))


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Creates the publications table on a new catalog (its own commit, before any publication)."""
    con.execute(f"create schema if not exists {catalog.MARTS}.tidewater")
    con.execute(f"create table if not exists {PUBLICATIONS} (publication_id varchar not null, "
                "action varchar not null, published_at timestamp with time zone not null, rows json not null)")


def history(con: duckdb.DuckDBPyConnection) -> list[Publication]:
    """The publications whose snapshots are still kept, oldest first; the last one is what readers see."""
    rows = con.execute(f"select snapshot_id, snapshot_time, commit_extra_info from {catalog.MARTS}.snapshots() "
                       "where author = ? and commit_extra_info is not null order by snapshot_id", [AUTHOR]).fetchall()
    publications = []
    for snapshot_id, snapshot_time, extra in rows:
        info = json.loads(extra)
        publications.append(Publication(info["publication_id"], snapshot_id, snapshot_time, info["action"],
                                        info.get("rows", {})))
    return publications


def current(con: duckdb.DuckDBPyConnection) -> Publication | None:
    kept = history(con)
    return kept[-1] if kept else None


def current_publication(settings: Settings) -> str | None:
    """The id of the publication readers get now (read as the marts reader), or None before the first one."""
    try:
        con = open_published(settings)
    except NothingPublished:
        return None
    with con:
        publication = current(con)
    return publication.publication_id if publication else None


def _replace_marts(con: duckdb.DuckDBPyConnection, publication_id: str, action: Action, source: str,
                   tables: tuple[tuple[str, str], ...]) -> Publication:
    """One transaction: every table of `tables` (published_tables) replaced by `source` (a relation: ``{schema}``,
    ``{table}`` placeholders), the publication recorded."""
    con.execute("begin")
    try:
        for schema, table in tables:
            con.execute(f"create schema if not exists {catalog.MARTS}.{schema}")
            con.execute(f"create or replace table {catalog.MARTS}.{schema}.{table} as select * from "
                        + source.format(schema=schema, table=table))
        rows = {table: con.execute(f"select count(*) from {catalog.MARTS}.main.{table}").fetchone()[0]
                for schema, table in tables if schema == "main"}
        _record(con, publication_id, action, rows)
        con.execute("commit")
    except BaseException:
        with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended the transaction
            con.execute("rollback")
        raise
    snapshot_id = con.execute(f"select id from ducklake_last_committed_snapshot({literal(catalog.MARTS)})"
                              ).fetchone()[0]
    published = next((p for p in reversed(history(con)) if p.snapshot_id == snapshot_id), None)
    if published is None or published.publication_id != publication_id:
        raise RuntimeError(f"publication {publication_id} committed, but snapshot {snapshot_id} of the marts "
                           "catalog does not name it: look at `from marts.snapshots()`")
    return published


def _record(con: duckdb.DuckDBPyConnection, publication_id: str, action: Action, rows: dict[str, int]) -> None:
    """The publication's row and the commit's message, inside the publishing transaction."""
    extra = json.dumps({"publication_id": publication_id, "action": action, "rows": rows})
    con.execute(f"call {catalog.MARTS}.set_commit_message(?, ?, extra_info => ?)",
                [AUTHOR, f"{action} {publication_id}", extra])
    con.execute(f"insert into {PUBLICATIONS} values (?, ?, get_current_timestamp(), ?)",
                [publication_id, action, json.dumps(rows)])


def _announce(marts: Lake, publication: Publication) -> None:
    marts.bucket.put_json(POINTER_KEY, publication.summary())


def publish(settings: Settings, publication_id: str, marts: Lake) -> Publication:
    """Publishes the candidate that passed the gate as one snapshot, then applies retention if due.

    `marts.con` has the marts catalog attached as its writer (``open_marts``). The candidate file is removed
    once published. A retry of a publish that committed returns that publication; retention that fails is
    logged and left to the next publish (the publication stands).
    """
    con = marts.con
    ensure_tables(con)
    done = next((p for p in history(con) if p.publication_id == publication_id and p.action == "publish"), None)
    if done is not None:
        discard_candidate(settings, publication_id)
        _announce(marts, current(con) or done)
        return done
    candidate = candidate_path(settings, publication_id)
    if not candidate.exists():
        raise ConfigError(f"no candidate {candidate}: publish only runs after the gate staged and passed it")
    now = current(con)
    if now is not None and now.action == "publish" and publication_id < now.publication_id:
        discard_candidate(settings, publication_id)
        raise ConfigError(f"candidate {publication_id} is older than the published {now.publication_id}: a newer "
                          "candidate was published meanwhile, so this one is discarded (a rollback publishes "
                          "an earlier publication on purpose: python -m tidewater.gate.publish rollback)")
    con.execute(f"attach {literal(candidate)} as candidate (read_only)")
    try:
        published = _replace_marts(con, publication_id, "publish", "candidate.{schema}.{table}",
                                   published_tables(settings))
    finally:
        con.execute("detach candidate")
    discard_candidate(settings, publication_id)
    _announce(marts, published)
    try:
        if retention_due(settings, con):
            retain(settings, con)
    except (duckdb.Error, ObjectStoreError) as exc:
        log.warning("publication %s stands, but retention of the marts catalog failed (the next publish tries "
                    "again; or run python -m tidewater.gate.publish retain): %s", publication_id, exc)
    return published


def rollback(settings: Settings, marts: Lake, to: str | None = None) -> Publication:
    """Publishes a kept publication's rows again (default: the newest one older than the current)."""
    kept = history(marts.con)
    if not kept:
        raise ConfigError("nothing is published in the marts catalog: nothing to roll back")
    now = kept[-1]
    snapshots = {p.publication_id: p.snapshot_id for p in kept}  # the newest snapshot holding each publication
    if to is None:
        older = sorted(pid for pid in snapshots if pid < now.publication_id)
        if not older:
            raise ConfigError(f"no publication older than {now.publication_id} is kept (TIDEWATER_MARTS_KEEP_HOURS="
                              f"{settings.marts_keep_hours:g}): nothing to roll back to")
        to = older[-1]
    if to not in snapshots:
        raise ConfigError(f"publication {to!r} is not kept; choose one of: {', '.join(sorted(snapshots))}")
    version = snapshots[to]
    published = _replace_marts(marts.con, to, "rollback",
                               f"{catalog.MARTS}.{{schema}}.{{table}} at (version => {version})",
                               published_tables(settings))
    _announce(marts, published)
    return published


def retention_due(settings: Settings, con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> bool:
    """Whether a snapshot was replaced more than 1.1 x ``marts_keep_hours`` ago: retention has work overdue by a
    tenth of the keep time (a pass costs ~0.5-1 s, listing the marts' files, and would mostly find nothing)."""
    overdue = (now or datetime.now(UTC)) - timedelta(hours=1.1 * settings.marts_keep_hours)
    # The newest snapshot at or before the cutoff stays; one older than it is overdue.
    return con.execute(f"select count(*) >= 2 from {catalog.MARTS}.snapshots() where snapshot_time <= ?",
                       [overdue]).fetchone()[0]


def retain(settings: Settings, con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> Retention:
    """Expires snapshots replaced more than ``marts_keep_hours`` ago, deletes their files, and deletes files of
    publishes that never committed once that old. The snapshot current at the cutoff stays (readers may have
    started on it since), and so does every later one."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=settings.marts_keep_hours)
    alias = literal(catalog.MARTS)
    anchor = con.execute(f"select max(snapshot_time) from {catalog.MARTS}.snapshots() where snapshot_time <= ?",
                         [cutoff]).fetchone()[0]
    expired = []
    if anchor is not None:
        expired = [row[0] for row in con.execute(
            f"select snapshot_id from ducklake_expire_snapshots({alias}, older_than => ?)", [anchor]).fetchall()]
    deleted = con.execute(f"select count(*) from ducklake_cleanup_old_files({alias}, cleanup_all => true)"
                          ).fetchone()[0]
    orphans = con.execute(f"select count(*) from ducklake_delete_orphaned_files({alias}, older_than => ?)",
                          [cutoff]).fetchone()[0]
    return Retention(expired, deleted, orphans)


def main(argv: list[str] | None = None) -> None:
    """`python -m tidewater.gate.publish list|rollback [--to ID]|retain`."""
    parser = argparse.ArgumentParser(prog="python -m tidewater.gate.publish", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="kept publications (snapshot, time, action), the current one marked")
    back = commands.add_parser("rollback", help="publish an earlier publication's rows again")
    back.add_argument("--to", help="publication id (default: the newest one older than the current)")
    commands.add_parser("retain", help="expire snapshots older than TIDEWATER_MARTS_KEEP_HOURS, delete their files")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "list":
        try:
            con = open_published(settings)
        except NothingPublished as error:
            print(f"[marts] {error}")
            return
        with con:
            kept = history(con)
        for publication in kept:
            print(("* " if publication is kept[-1] else "  ") + f"{publication.publication_id}  snapshot "
                  f"{publication.snapshot_id}  {publication.published_at.isoformat()}  {publication.action}")
        return
    marts = open_marts(settings)
    try:
        if args.command == "rollback":
            published = rollback(settings, marts, args.to)
            print(f"[marts] now publishing {published.publication_id} (snapshot {published.snapshot_id})")
        else:
            done = retain(settings, marts.con)
            print(f"[marts] expired {len(done.expired_snapshots)} snapshots, deleted {done.deleted_files} files "
                  f"and {done.deleted_orphans} orphaned files")
    finally:
        marts.con.close()


if __name__ == "__main__":
    main()
