"""Published marts are snapshots of a DuckLake catalog: readers see one publication whole, a killed publish
changes nothing, rollback publishes an earlier one again, retention is by age, and readers cannot write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from tests.support.marts import ScratchMarts, new_marts, read_all_marts, rows_of, stage_synthetic
from tidewater.config import ConfigError, get_connection
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.gate import publish, stage
from tidewater.gate.suites import mart_names
from tidewater.lake import catalog

DRIVER = Path(__file__).with_name("marts_driver.py")


@pytest.fixture
def marts(settings, tmp_path) -> Iterator[ScratchMarts]:
    with new_marts(settings, tmp_path / "marts") as scratch:
        yield scratch


def publish_number(marts: ScratchMarts, number: int) -> publish.Publication:
    session = marts.writer()
    try:
        return publish.publish(marts.settings, stage_synthetic(marts.settings, number), session)
    finally:
        session.con.close()


def number_of(seen: dict) -> int | None:
    """The one publication every mart of a read belongs to, or None if the read mixed publications."""
    numbers = {tuple(seen[table][0]) for table in (*mart_names(), "gate")}
    if len(numbers) != 1 or len(next(iter(numbers))) != 1:
        return None
    number = next(iter(numbers))[0]
    complete = all(seen[table][1] == rows_of(number, table) for table in mart_names()) and \
        list(seen["gate"]) == [[number], 1]
    return number if complete and seen["publication"].endswith(f"-{number:03d}") else None


def driver(marts: ScratchMarts, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), *args], env={**os.environ, **marts.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_before_the_first_publication_readers_are_told_nothing_is_published(marts):
    assert publish.current_publication(marts.settings) is None
    with pytest.raises(publish.NothingPublished, match="no publication yet: run the warehouse DAG"):
        publish.open_published(marts.settings)

    publish_number(marts, 0)

    assert publish.current_publication(marts.settings).endswith("-000")


def test_a_reader_polling_during_ten_publications_never_sees_two_publications_mixed(marts, tmp_path):
    publish_number(marts, 0)
    log, stop = tmp_path / "reads.jsonl", tmp_path / "stop"
    reader = driver(marts, "read", str(log), str(stop))
    try:
        for number in range(1, 11):
            publish_number(marts, number)
    finally:
        stop.touch()
        _, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err[-3000:]

    reads = [json.loads(line) for line in log.read_text().splitlines()]
    mixed = [seen for seen in reads if number_of(seen) is None]
    assert mixed == []
    seen_numbers = [number_of(seen) for seen in reads]
    assert seen_numbers == sorted(seen_numbers), "a reader went back to an older publication"
    assert len(set(seen_numbers)) >= 3, f"the reader saw only publications {sorted(set(seen_numbers))}: proves little"


def test_a_publish_killed_inside_its_transaction_leaves_readers_on_the_previous_publication(marts):
    before = publish_number(marts, 1)
    candidate = stage_synthetic(marts.settings, 2)

    killed = driver(marts, "die-in-publish", candidate)
    out, err = killed.communicate(timeout=300)

    assert killed.returncode == -9, f"the publish was not killed inside its transaction:\n{out}\n{err[-3000:]}"
    with marts.reader() as con:
        assert number_of(read_all_marts(con)) == 1
        assert publish.current(con) == before
    # The killed publish wrote its mart files; no snapshot references them, and retention deletes them once old.
    writer = marts.writer()
    try:
        orphans = writer.con.execute("select count(*) from ducklake_delete_orphaned_files('marts', dry_run => true, "
                                     "cleanup_all => true)").fetchone()[0]
        assert orphans > 0
        assert publish.retain(marts.settings, writer.con).deleted_orphans == 0, "younger orphans must stay"
        later = before.published_at + timedelta(hours=marts.settings.marts_keep_hours, minutes=5)
        assert publish.retain(marts.settings, writer.con, now=later).deleted_orphans == orphans
        assert publish.current(writer.con).publication_id == before.publication_id
    finally:
        writer.con.close()
    with marts.reader() as con:
        assert number_of(read_all_marts(con)) == 1


def test_rollback_publishes_the_previous_publications_rows_again(marts):
    first, second, third = (publish_number(marts, number) for number in (1, 2, 3))
    writer = marts.writer()
    try:
        back = publish.rollback(marts.settings, writer)
        with marts.reader() as con:
            assert number_of(read_all_marts(con)) == 2
            assert publish.current(con).publication_id == second.publication_id
        assert (back.publication_id, back.action, back.rows) == (second.publication_id, "rollback", second.rows)
        assert back.snapshot_id > third.snapshot_id
        assert writer.bucket.get_json(publish.POINTER_KEY)["publication_id"] == second.publication_id

        again = publish.rollback(marts.settings, writer)
        assert again.publication_id == first.publication_id
        to_third = publish.rollback(marts.settings, writer, to=third.publication_id)
        with marts.reader() as con:
            assert number_of(read_all_marts(con)) == 3 and to_third.rows == third.rows
        with pytest.raises(ConfigError, match="is not kept; choose one of"):
            publish.rollback(marts.settings, writer, to="20000101T000000000000Z")
    finally:
        writer.con.close()


def test_retention_expires_only_snapshots_replaced_longer_ago_than_the_keep_time(marts):
    first, second, third = (publish_number(marts, number) for number in (1, 2, 3))
    # A cutoff between the second and the third publication: the first was replaced before it (expired), the
    # second was current at the cutoff (a reader may have started on it since: kept), the third is current.
    cutoff = second.published_at + (third.published_at - second.published_at) / 2
    now = cutoff + timedelta(hours=marts.settings.marts_keep_hours)
    held = marts.reader()
    try:
        held.execute("begin")  # a reader that started on the second publication's snapshot
        assert held.execute(f"select count(*) from marts.main.{mart_names()[-1]} at (version => {second.snapshot_id})"
                            ).fetchone()[0] == rows_of(2, mart_names()[-1])
        writer = marts.writer()
        try:
            done = publish.retain(marts.settings, writer.con, now=now)
            kept = [p.publication_id for p in publish.history(writer.con)]
        finally:
            writer.con.close()
        assert first.snapshot_id in done.expired_snapshots and done.deleted_files > 0
        assert second.snapshot_id not in done.expired_snapshots
        assert kept == [second.publication_id, third.publication_id]
        for table in mart_names():
            assert held.execute(f"select count(*) from marts.main.{table} at (version => {second.snapshot_id})"
                                ).fetchone()[0] == rows_of(2, table)
        held.execute("commit")
    finally:
        held.close()
    with marts.reader() as con:
        with pytest.raises(duckdb.Error):
            con.execute(f"select count(*) from marts.main.{mart_names()[-1]} at (version => {first.snapshot_id})"
                        ).fetchall()
        assert number_of(read_all_marts(con)) == 3


def test_a_publish_runs_retention_only_once_a_snapshot_is_overdue_by_a_tenth_of_the_keep_time(marts):
    _, second = (publish_number(marts, number) for number in (1, 2))
    keep = timedelta(hours=marts.settings.marts_keep_hours)
    writer = marts.writer()
    try:
        # Just past the keep time, retention would expire the first snapshot, but it is not overdue yet.
        assert not publish.retention_due(marts.settings, writer.con, now=second.published_at + keep * 1.05)
        assert publish.retain(marts.settings, writer.con, now=second.published_at + keep * 1.05).expired_snapshots
    finally:
        writer.con.close()
    third = publish_number(marts, 3)
    writer = marts.writer()
    try:
        assert not publish.retention_due(marts.settings, writer.con, now=third.published_at + keep * 1.05)
        assert publish.retention_due(marts.settings, writer.con, now=third.published_at + keep * 1.15)
    finally:
        writer.con.close()


def test_the_reader_role_cannot_write_the_marts(marts):
    publish_number(marts, 1)
    with marts.reader() as con, pytest.raises(duckdb.Error, match="read-only"):
        con.execute(f"delete from marts.main.{mart_names()[0]}")
    # Attached without READ_ONLY, the role itself is refused by PostgreSQL.
    reader = get_connection(marts.settings.marts_reader_conn_id)
    con = duckdb.connect()
    try:
        load_extensions(con, "httpfs", "ducklake", "postgres")
        con.execute(s3_secret_sql(get_connection(marts.settings.lake_conn_id)))
        catalog.attach(con, catalog.MARTS, reader, catalog.data_path(marts.settings, catalog.MARTS))
        with pytest.raises(duckdb.Error, match="permission denied"):
            con.execute(f"delete from marts.main.{mart_names()[0]}")
    finally:
        con.close()
    with psycopg.connect(replace(reader, schema=marts.database).postgres_conninfo()) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("delete from ducklake_snapshot")
    with marts.reader() as con:
        assert number_of(read_all_marts(con)) == 1


def test_a_retried_publish_returns_its_publication_and_an_older_candidate_is_refused(marts):
    older = stage_synthetic(marts.settings, 1)
    second = publish_number(marts, 2)
    session = marts.writer()
    try:
        assert publish.publish(marts.settings, second.publication_id, session) == second
        with pytest.raises(ConfigError, match="is older than the published"):
            publish.publish(marts.settings, older, session)
        assert [p.publication_id for p in publish.history(session.con)] == [second.publication_id]
    finally:
        session.con.close()
    assert not stage.candidate_path(marts.settings, older).exists()
    with marts.reader() as con:
        assert number_of(read_all_marts(con)) == 2
