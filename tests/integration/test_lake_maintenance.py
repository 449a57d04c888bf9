"""Lake maintenance on a scratch lake of real drains: compaction changes no row and no change, retention by age."""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from tidewater import drain
from tidewater.cdc.connector import table_topic
from tidewater.config import get_connection
from tidewater.drain import drainer
from tidewater.drain.drainer import DrainLimits, Replay
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.lake import catalog, maintenance
from tidewater.lake import objects as layout

TABLES = ("orders", "customers")
POLICY = maintenance.Policy(keep_hours=168, file_min_age_hours=1)


def drain_slice(settings, lake, topic, replay=None):
    """One drain of at most 50 records per partition in files of 5 rows: many small files."""
    consumer = drain.kafka_consumer(settings, group_id=f"test-maintenance-{uuid.uuid4().hex[:12]}")
    try:
        return drainer.drain_topic(consumer, lake, topic, drain.kafka_topic_id(settings, topic),
                                   DrainLimits(file_max_rows=5, max_records_per_run=50), replay=replay)
    finally:
        consumer.close()


def small_files_lake(settings, lake) -> None:
    """Three drains of each table, and a replay that deletes part of the orders again (files with deletes)."""
    for table in TABLES:
        for _ in range(3):
            drain_slice(settings, lake, table_topic(settings, table))
    drain_slice(settings, lake, table_topic(settings, "orders"), replay=Replay(offsets={0: 75}))


def current_snapshot(lake) -> int:
    return lake.con.execute("SELECT id FROM lake.current_snapshot()").fetchone()[0]


def contents(lake, table: str) -> list[tuple]:
    """Every column of every row, with the row id and the snapshot that inserted it, sorted."""
    return lake.con.execute(f"SELECT rowid, snapshot_id, * FROM lake.main.{table} ORDER BY ALL").fetchall()


def changes(lake, table: str, start: int, end: int) -> list[tuple]:
    return lake.con.execute(f"SELECT * FROM ducklake_table_changes('lake', 'main', '{table}', {start}, {end}) "
                            "ORDER BY ALL").fetchall()


def snapshot_ids(lake) -> list[int]:
    return [row[0] for row in lake.con.execute("SELECT snapshot_id FROM lake.snapshots() ORDER BY 1").fetchall()]


def listed_files(lake, table: str) -> set[str]:
    """The table's data files in the current snapshot."""
    return {row[0] for row in lake.con.execute(f"SELECT data_file FROM ducklake_list_files('lake', '{table}')")
            .fetchall()}


def referenced_files(lake) -> set[str]:
    """Every data and delete file some kept snapshot needs."""
    files = set()
    for table in TABLES:
        for version in snapshot_ids(lake):
            with contextlib.suppress(duckdb.CatalogException):  # not at snapshots before the table existed
                files |= {file for row in lake.con.execute(
                    f"SELECT data_file, delete_file FROM ducklake_list_files('lake', '{table}', "
                    f"snapshot_version => {version})").fetchall() for file in row if file}
    return files


def upload_uncommitted_file(lake, settings) -> str:
    """A data file as a drain in flight leaves it: uploaded under the data path, not yet registered by a commit."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3]}), buffer)
    key = layout.data_key(table_topic(settings, "orders"), "2026-12-02", 0, 10**9, 10**9 + 2, uuid.uuid4().hex[:12])
    lake.bucket.put_parquet(key, buffer.getvalue())
    return key


def test_compaction_changes_no_row_and_no_change_and_leaves_fewer_files(shop_changes, lake):
    small_files_lake(shop_changes, lake)
    before = current_snapshot(lake)
    rows = {table: contents(lake, table) for table in TABLES}
    feed = {(table, start): changes(lake, table, start, before) for table in TABLES for start in snapshot_ids(lake)}
    files = {table: listed_files(lake, table) for table in TABLES}
    assert all(len(files[table]) >= 10 for table in TABLES), files
    in_flight = upload_uncommitted_file(lake, shop_changes)

    done = maintenance.run(lake.con, POLICY)

    after = current_snapshot(lake)
    assert set(done.compacted) == {f"main.{table}" for table in TABLES}
    assert done.files_after < done.files_before
    for table in TABLES:
        assert len(listed_files(lake, table)) < len(files[table])
        assert contents(lake, table) == rows[table], f"{table}: compaction changed rows, row ids or snapshot ids"
        assert changes(lake, table, before + 1, after) == [], f"{table}: compaction shows in the change feed"
    changed = [key for key, rows_then in feed.items() if changes(lake, *key, after) != rows_then]
    assert changed == [], "ducklake_table_changes(start, now) differs after compaction for these (table, start)"
    assert done.expired_snapshots == [] and done.deleted_orphans == 0
    assert lake.bucket.keys(in_flight) == [in_flight], "the uncommitted file of a drain in flight was deleted"
    merged_away = set().union(*files.values()) - set().union(*(listed_files(lake, t) for t in TABLES))
    assert merged_away <= {lake.bucket.uri(key) for key in lake.bucket.keys(layout.DATA + "/")}, \
        "files were deleted before file_min_age_hours"

    later = maintenance.run(lake.con, POLICY, now=datetime.now(UTC) + timedelta(hours=2))

    assert later.deleted_files == len(merged_away) and later.deleted_orphans == 1
    kept = {lake.bucket.uri(key) for key in lake.bucket.keys(layout.DATA + "/")}
    assert kept == referenced_files(lake), "S3 holds exactly the files a kept snapshot needs"
    assert all(contents(lake, table) == rows[table] for table in TABLES)


def test_expiry_keeps_every_snapshot_younger_than_the_retention(shop_changes, lake):
    topic = table_topic(shop_changes, "orders")
    drain_slice(shop_changes, lake, topic)
    unread = current_snapshot(lake)  # a warehouse that loaded up to here has not read what follows
    unread_at = lake.con.execute("SELECT snapshot_time FROM lake.snapshots() WHERE snapshot_id = ?",
                                 [unread]).fetchone()[0]
    drain_slice(shop_changes, lake, topic)
    drain_slice(shop_changes, lake, topic)
    end = current_snapshot(lake)
    feed, rows, older = changes(lake, "orders", unread + 1, end), contents(lake, "orders"), snapshot_ids(lake)

    assert maintenance.run(lake.con, POLICY).expired_snapshots == []
    # Run as if `keep_hours` had passed since the snapshot the warehouse loaded last.
    done = maintenance.run(lake.con, POLICY, now=unread_at + timedelta(hours=POLICY.keep_hours))

    assert done.expired_snapshots == [s for s in older if s < unread] and done.expired_snapshots
    assert snapshot_ids(lake)[0] == unread
    assert changes(lake, "orders", unread + 1, end) == feed
    assert contents(lake, "orders") == rows

    everything = maintenance.run(lake.con, POLICY, now=datetime.now(UTC) + timedelta(hours=POLICY.keep_hours + 1))

    assert snapshot_ids(lake) == [current_snapshot(lake)], "every snapshot but the current one is expired"
    assert everything.expired_snapshots and contents(lake, "orders") == rows


def second_writer(settings, lake) -> duckdb.DuckDBPyConnection:
    """Another process's view of the scratch lake: its own DuckDB connection with the catalog attached."""
    con = duckdb.connect()
    load_extensions(con, "httpfs", "ducklake", "postgres")
    con.execute(s3_secret_sql(get_connection(settings.lake_conn_id)))
    catalog.attach(con, catalog.LAKE, get_connection(lake.conn_id), lake.bucket.uri(catalog.DATA_PREFIX[catalog.LAKE]))
    return con


def five_files(lake) -> None:
    """lake.main.t: ids 0..99 in five files of 20 rows (above DuckLake's inlining limit), as five drains leave them."""
    lake.con.execute("CREATE TABLE lake.main.t (id BIGINT)")
    for first in range(0, 100, 20):
        lake.con.execute(f"INSERT INTO lake.main.t SELECT range FROM range({first}, {first + 20})")


def test_ducklake_loses_a_delete_that_overlaps_a_compaction_hence_the_rewrite_lock(settings, lake):
    # If this starts failing, DuckLake detects the conflict (or keeps the delete): the lock may then go.
    five_files(lake)
    replay = second_writer(settings, lake)
    lake.con.execute("BEGIN TRANSACTION")
    lake.con.execute("CALL ducklake_merge_adjacent_files('lake', 't', schema => 'main')")
    replay.execute("BEGIN TRANSACTION")
    replay.execute("DELETE FROM lake.main.t WHERE id = 0")
    replay.execute("COMMIT")  # while the compaction is open

    lake.con.execute("COMMIT")  # no conflict reported

    # The one-row deletion was inlined, recorded against the merged-away file, and is gone.
    assert replay.execute("SELECT count(*) FROM lake.main.t WHERE id = 0").fetchone()[0] == 1, "the delete was lost"


def test_compaction_waits_for_a_replay_holding_the_rewrite_lock_and_keeps_its_delete(settings, lake):
    five_files(lake)
    metadata = get_connection(lake.conn_id)
    replay = second_writer(settings, lake)
    outcome: dict = {}
    with maintenance.rewrite_lock(metadata):
        replay.execute("BEGIN TRANSACTION")
        replay.execute("DELETE FROM lake.main.t WHERE id = 0")
        worker = threading.Thread(target=lambda: outcome.update(done=maintenance.run(
            lake.con, POLICY, lock=partial(maintenance.rewrite_lock, metadata))))
        worker.start()
        wait_for_lock_waiter(metadata)
        replay.execute("COMMIT")
    worker.join(timeout=300)

    assert "main.t" in outcome["done"].compacted
    assert sorted(row[0] for row in replay.execute("SELECT id FROM lake.main.t").fetchall()) == list(range(1, 100))


def wait_for_lock_waiter(metadata, attempts: int = 600) -> None:
    """Returns once some session of the catalog database waits for an advisory lock (the compaction, blocked)."""
    with psycopg.connect(metadata.postgres_conninfo(), autocommit=True) as conn:
        for _ in range(attempts):
            if conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]:
                return
            time.sleep(0.1)
    raise AssertionError("maintenance never waited for the rewrite lock")


def test_a_drain_commit_overlapping_a_compaction_keeps_every_row_in_either_order(settings, lake):
    five_files(lake)
    drain_writer = second_writer(settings, lake)
    expected = list(range(100))
    for compaction_first in (True, False):
        first_id = len(expected)
        buffer = io.BytesIO()
        pq.write_table(pa.table({"id": pa.array(range(first_id, first_id + 20), pa.int64())}), buffer)
        key = f"{layout.DATA}/t/drain-{first_id}.parquet"
        lake.bucket.put_parquet(key, buffer.getvalue())
        drain_writer.execute("BEGIN TRANSACTION")
        drain_writer.execute("CALL ducklake_add_data_files('lake', 't', ?, schema => 'main')", [lake.bucket.uri(key)])
        lake.con.execute("BEGIN TRANSACTION")
        lake.con.execute("CALL ducklake_merge_adjacent_files('lake', 't', schema => 'main')")

        for con in (lake.con, drain_writer) if compaction_first else (drain_writer, lake.con):
            con.execute("COMMIT")
        expected += list(range(first_id, first_id + 20))

        ids = [row[0] for row in drain_writer.execute("SELECT id FROM lake.main.t ORDER BY id").fetchall()]
        assert ids == expected, f"compaction first: {compaction_first}"
