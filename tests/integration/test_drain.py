"""cdc_drain against the real stack: Debezium topics → Parquet on MinIO, exactly once."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from tests.support.connectors import scratch_connector
from tests.support.kafka import create_topic, delete_topic, produce, real_events
from tests.support.lake import (
    drain_once,
    kafka_records,
    landed_offsets,
    now_ms,
    read_quarantine,
    read_raw,
    wait_for_offsets,
)
from tidewater import drain
from tidewater.cdc.access import admin_config
from tidewater.cdc.connector import table_topic
from tidewater.drain import drainer
from tidewater.drain.drainer import Replay
from tidewater.lake import commit, maintenance
from tidewater.lake import objects as layout
from tidewater.tables import Registry, Table

CRASH_DRIVER = Path(__file__).with_name("drain_crash_driver.py")
NOT_JSON = b"\xff\xfe not json, not even UTF-8"


def expected_offsets(settings, topic, result) -> set[tuple[int, int]]:
    """Every record the drain covered, tombstones excepted (they are skipped by design)."""
    records = kafka_records(settings, topic, {p.partition: p.end for p in result.partitions})
    return {key for key, value in records.items() if value is not None}


def assert_exactly_once(settings, lake, topic, result):
    landed = landed_offsets(lake, topic)
    assert {key for key, count in landed.items() if count > 1} == set(), "records landed twice"
    assert set(landed) == expected_offsets(settings, topic, result)


def test_drain_lands_every_change_once_with_exact_types(shop_changes, lake, group_id):
    topic = table_topic(shop_changes, "order_items")

    result = drain_once(shop_changes, lake, topic, group_id, file_max_rows=50)

    assert result.rows > 50 and result.files > 1
    assert_exactly_once(shop_changes, lake, topic, result)
    raw = read_raw(lake, topic)
    assert str(raw.schema.field("unit_price").type) == "decimal128(12, 2)"
    created_at = raw.schema.field("created_at").type
    assert (created_at.unit, created_at.tz in ("UTC", "Etc/UTC")) == ("us", True)
    assert set(raw.column("_op").to_pylist()) >= {"c", "d"}  # cancellations delete items
    # Debezium may still be emitting the fixture's traffic: a second run continues exactly where the first
    # stopped, and everything is still in the lake once.
    again = drain_once(shop_changes, lake, topic, group_id)
    assert [p.start for p in again.partitions] == [p.end for p in result.partitions]
    assert_exactly_once(shop_changes, lake, topic, again)


@pytest.mark.parametrize("crash", ["after_first_upload", "mid_file", "before_commit", "in_commit"])
def test_a_drain_killed_at_any_point_loses_and_duplicates_nothing(shop_changes, lake, group_id, crash):
    topic = table_topic(shop_changes, "orders")

    killed = subprocess.run([sys.executable, str(CRASH_DRIVER), topic, group_id, crash, "40"],
                            env={**os.environ, **lake.env}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert lake.bucket.keys(layout.DATA + "/"), "the killed drain should have uploaded something first"
    assert read_raw(lake, topic).num_rows == 0  # none of it is in the lake
    result = drain_once(shop_changes, lake, topic, group_id, file_max_rows=40)

    assert result.partitions[0].start == 0
    assert_exactly_once(shop_changes, lake, topic, result)


def test_replay_from_an_offset_redrains_without_duplicates(shop_changes, lake, group_id):
    topic = table_topic(shop_changes, "orders")
    first = drain_once(shop_changes, lake, topic, group_id, file_max_rows=30)
    middle = first.partitions[0].start + (first.partitions[0].end - first.partitions[0].start) // 2

    replayed = drain_once(shop_changes, lake, topic, group_id, replay=Replay(offsets={0: middle}), file_max_rows=30)

    assert replayed.partitions[0].start == middle
    assert replayed.rows > 0
    assert_exactly_once(shop_changes, lake, topic, replayed)


def test_a_replay_at_or_after_the_lakes_position_is_refused(shop_changes, lake, group_id):
    topic = table_topic(shop_changes, "orders")
    first = drain_once(shop_changes, lake, topic, group_id)
    position = first.partitions[0].end

    with pytest.raises(drainer.DrainError, match=rf"continues at {position}\. A replay only goes back"):
        drain_once(shop_changes, lake, topic, group_id, replay=Replay(offsets={0: position}))
    with pytest.raises(drainer.DrainError, match="A replay only goes back"):
        drain_once(shop_changes, lake, topic, group_id, replay=Replay(timestamp_ms=now_ms() + 3_600_000))
    assert commit.read_positions(lake.con, topic).offsets == {0: position}  # nothing moved


def test_the_lake_not_the_consumer_group_says_where_a_drain_continues(shop_changes, lake, group_id):
    topic = table_topic(shop_changes, "customers")
    first = drain_once(shop_changes, lake, topic, group_id, file_max_rows=25)
    admin = AdminClient(admin_config(os.environ))
    [deleted] = admin.delete_consumer_groups([group_id]).values()
    deleted.result()

    again = drain_once(shop_changes, lake, topic, group_id)

    assert [p.start for p in again.partitions] == [p.end for p in first.partitions]
    assert_exactly_once(shop_changes, lake, topic, again)


def test_two_drains_of_one_topic_at_once_land_each_record_once_and_one_fails(shop_changes, lake, group_id,
                                                                            tmp_path):
    topic = table_topic(shop_changes, "order_items")
    env = {**os.environ, **lake.env}
    together = f"barrier:{tmp_path}:2"  # both have drained the same slice before either commits
    runs = [subprocess.Popen([sys.executable, str(CRASH_DRIVER), topic, f"{group_id}-{n}", together, "500"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]

    assert sorted(code for code, _ in outcomes) == [0, 1], [err[-1500:] for _, err in outcomes]
    [loser] = [err for code, err in outcomes if code == 1]
    assert "another drain of this topic committed first" in loser
    landed = landed_offsets(lake, topic)
    assert {key for key, count in landed.items() if count > 1} == set(), "records landed twice"
    position = commit.read_positions(lake.con, topic).offsets
    expected = {key for key, value in kafka_records(shop_changes, topic, position).items() if value is not None}
    assert set(landed) == expected
    registered = {row[0] for row in lake.con.execute(
        f"SELECT data_file FROM ducklake_list_files('lake', '{layout.table_of(topic)}')").fetchall()}
    uploaded = {lake.bucket.uri(key) for key in lake.bucket.keys(layout.DATA + "/")}
    assert uploaded == registered  # the loser removed its files


def test_drains_of_different_partitions_of_one_topic_at_once_both_commit(shop_changes, lake, group_id,
                                                                        scratch_topic, tmp_path):
    """What cdc_drain's tasks for the partitions of one topic do on two workers: both commit, each record once."""
    create_topic(shop_changes, scratch_topic, partitions=4)
    events = real_events(shop_changes, 120)
    for partition in range(4):
        produce(shop_changes, scratch_topic, events[partition * 30:(partition + 1) * 30], partition=partition)
    env = {**os.environ, **lake.env}
    together = f"barrier:{tmp_path}:2"  # both have drained their slices before either commits
    runs = [subprocess.Popen([sys.executable, str(CRASH_DRIVER), scratch_topic, group_id, together, "10", partitions],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for partitions in ("0,1", "2,3")]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]

    assert [code for code, _ in outcomes] == [0, 0], [err[-1500:] for _, err in outcomes]
    assert commit.read_positions(lake.con, scratch_topic).offsets == {0: 30, 1: 30, 2: 30, 3: 30}
    landed = landed_offsets(lake, scratch_topic)
    assert {key for key, count in landed.items() if count > 1} == set(), "records landed twice"
    assert set(landed) == {(partition, offset) for partition in range(4) for offset in range(30)}

    produce(shop_changes, scratch_topic, events[:5], partition=3)
    again = drain_once(shop_changes, lake, scratch_topic, group_id, partitions=[3])
    assert [(p.partition, p.start, p.end) for p in again.partitions] == [(3, 30, 35)]
    assert commit.read_positions(lake.con, scratch_topic).offsets == {0: 30, 1: 30, 2: 30, 3: 35}


def test_poison_records_are_quarantined_and_the_rest_lands(shop_changes, lake, group_id, scratch_topic):
    topic = scratch_topic
    good = real_events(shop_changes, 40)
    wrong_type = good[0].replace(b'"quantity":', b'"quantity":"many","was":', 1)
    assert wrong_type != good[0]
    not_envelope = b'{"schema":{"type":"string","optional":false},"payload":"hello"}'
    produce(shop_changes, topic, [*good[:20], NOT_JSON, wrong_type, not_envelope, b'{"hello": 1}',
                                   *good[20:]])

    result = drain_once(shop_changes, lake, topic, group_id, max_bad_share=0.2)

    assert (result.rows, result.quarantined) == (40, 4)
    quarantined = {row["offset"]: row for row in read_quarantine(lake, topic)}
    assert sorted(quarantined) == [20, 21, 22, 23]
    assert base64.b64decode(quarantined[20]["value"]["base64"]) == NOT_JSON
    assert "does not match its schema" in quarantined[21]["error"]
    assert "not a Debezium envelope" in quarantined[22]["error"]
    assert quarantined[23]["headers"] == [["source", {"text": "test"}]]
    assert quarantined[23]["key"] == {"text": '{"id": 1}'}
    assert_exactly_once(shop_changes, lake, topic, result)


def test_no_record_of_the_malformed_corpus_blocks_the_partition(shop_changes, lake, group_id, scratch_topic):
    corpus = [json.loads(line) for line in
              (Path(__file__).parents[1] / "unit" / "fixtures" / "malformed_records.jsonl").read_text().splitlines()]
    good = real_events(shop_changes, 10)
    assert len(good) == 10
    values, expected = [], {}
    for index, entry in enumerate(corpus):
        values.append(good[index % len(good)])
        expected[len(values)] = entry
        values.append(entry["value_text"].encode() if "value_text" in entry else
                      base64.b64decode(entry["value_base64"]))
    values.append(good[-1])
    produce(shop_changes, scratch_topic, values)

    result = drain_once(shop_changes, lake, scratch_topic, group_id, max_bad_share=1.0)

    quarantined = {row["offset"]: row for row in read_quarantine(lake, scratch_topic)}
    assert sorted(quarantined) == sorted(expected)
    for offset, entry in expected.items():
        assert entry["expect"].lower() in quarantined[offset]["error"].lower(), entry["name"]
    assert (result.rows, result.quarantined) == (len(values) - len(expected), len(expected))
    assert sorted(read_raw(lake, scratch_topic).column("_kafka_offset").to_pylist()) == \
        [offset for offset in range(len(values)) if offset not in expected]
    assert_exactly_once(shop_changes, lake, scratch_topic, result)
    # The partition moved on: the next drain has nothing left to read.
    assert drain_once(shop_changes, lake, scratch_topic, group_id, max_bad_share=1.0).records == 0


def test_too_many_poison_records_fail_the_run_naming_the_quarantine(shop_changes, lake, group_id,
                                                                   scratch_topic):
    topic = scratch_topic
    produce(shop_changes, topic, [*real_events(shop_changes, 10), b"garbage", b"more garbage"])

    with pytest.raises(drainer.DrainError, match=rf"2 of 12 records .* s3://{lake.bucket.bucket}/quarantine/"):
        drain_once(shop_changes, lake, topic, group_id, max_bad_share=0.05)

    # Not committed: a retry drains the same slice and fails the same way (tests/integration/test_quarantine.py).
    with pytest.raises(drainer.QuarantineLimitExceeded, match="2 of 12 records"):
        drain_once(shop_changes, lake, topic, group_id, max_bad_share=0.05)


def test_a_column_added_mid_stream_reads_together_with_old_files(shop, lake, group_id):
    table = f"evolution_{uuid.uuid4().hex[:8]}"
    admin = shop.shop_conninfo(admin=True)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE shop.{table} (id bigint PRIMARY KEY, amount numeric(10,2), seen date)")
        conn.execute(f"ALTER TABLE shop.{table} REPLICA IDENTITY FULL")
    probe = Registry((Table("shop", shop.shop_conn_id, "shop", table, ("id",)),))
    try:
        with scratch_connector(shop, probe, admin) as own:  # the shop's connector captures its registry only
            topic = probe.tables[0].topic(own.cdc_topic_prefix)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"INSERT INTO shop.{table} VALUES (1, 1.50, '2026-03-29'), (2, NULL, NULL)")
            wait_for_offsets(own, topic, 2)
            first = drain_once(own, lake, topic, group_id)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"ALTER TABLE shop.{table} ADD COLUMN note jsonb")
                conn.execute(f"""INSERT INTO shop.{table} VALUES (3, 99999999.99, '2026-10-25', '{{"a": "ü"}}')""")
                conn.execute(f"UPDATE shop.{table} SET amount = 2.25 WHERE id = 1")
            wait_for_offsets(own, topic, 4)
            second = drain_once(own, lake, topic, group_id)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP TABLE shop.{table}")

    assert (first.rows, second.rows) == (2, 2)
    rows = lake.con.sql(f"select id, amount, seen, note, _op from lake.main.{table} order by _kafka_offset").fetchall()
    from datetime import date
    from decimal import Decimal
    rows = [(*row[:3], json.loads(row[3]) if row[3] else None, row[4]) for row in rows]
    assert rows == [
        (1, Decimal("1.50"), date(2026, 3, 29), None, "c"),
        (2, None, None, None, "c"),
        (3, Decimal("99999999.99"), date(2026, 10, 25), {"a": "ü"}, "c"),
        (1, Decimal("2.25"), date(2026, 3, 29), None, "u"),
    ]


def test_a_column_whose_type_changes_fails_the_commit_naming_it_and_lands_nothing(shop_changes, lake, group_id,
                                                                               scratch_topic):
    good = real_events(shop_changes, 6)
    produce(shop_changes, scratch_topic, good[:5])
    assert drain_once(shop_changes, lake, scratch_topic, group_id).rows == 5
    retyped = re.sub(rb'"quantity":(\d+)', rb'"quantity":"\1"', good[5].replace(
        b'{"type":"int32","optional":false,"field":"quantity"}',
        b'{"type":"string","optional":false,"field":"quantity"}'))
    assert retyped != good[5]
    produce(shop_changes, scratch_topic, [retyped])

    with pytest.raises(commit.LakeError, match=r"column quantity is INTEGER in the lake but VARCHAR in the new "
                                               r"records, which does not widen it .* Nothing was committed"):
        drain_once(shop_changes, lake, scratch_topic, group_id)
    assert read_raw(lake, scratch_topic).num_rows == 5
    assert commit.read_positions(lake.con, scratch_topic).offsets == {0: 5}
    assert len(lake.bucket.keys(layout.DATA + "/")) == 1  # the failed run's file is gone


def test_an_empty_topic_run_writes_nothing(shop_changes, lake, group_id, scratch_topic):
    topic = scratch_topic
    produce(shop_changes, topic, real_events(shop_changes, 5))
    first = drain_once(shop_changes, lake, topic, group_id)
    keys_before = lake.bucket.keys("")
    snapshot = lake.con.execute("SELECT id FROM lake.current_snapshot()").fetchone()

    result = drain_once(shop_changes, lake, topic, group_id)

    assert first.rows == 5
    assert (result.records, result.rows, result.files) == (0, 0, 0)
    assert lake.bucket.keys("") == keys_before
    assert lake.con.execute("SELECT id FROM lake.current_snapshot()").fetchone() == snapshot  # no commit either


def test_a_recreated_topic_fails_clearly_until_accepted_and_loses_nothing(shop_changes, lake, group_id,
                                                                         scratch_topic):
    topic = scratch_topic
    events = real_events(shop_changes, 8)
    produce(shop_changes, topic, events[:5])
    assert drain_once(shop_changes, lake, topic, group_id).rows == 5
    delete_topic(shop_changes, topic)
    for _ in range(50):  # Kafka deletes topics asynchronously
        try:
            produce(shop_changes, topic, events[5:])
            break
        except Exception:
            time.sleep(0.2)

    with pytest.raises(drainer.DrainError, match=r"was deleted and created again.*accept_recreated_topic"):
        drain_once(shop_changes, lake, topic, group_id)
    assert read_raw(lake, topic).num_rows == 5

    consumer = drain.kafka_consumer(shop_changes, group_id=group_id)
    try:
        accepted = drainer.drain_topic(consumer, lake, topic, drain.kafka_topic_id(shop_changes, topic),
                                       accept_recreated_topic=True)
    finally:
        consumer.close()
    assert (accepted.partitions[0].start, accepted.rows) == (0, 3)
    assert read_raw(lake, topic).num_rows == 8


def test_a_replay_waits_for_the_rewrite_lock_compaction_holds(shop_changes, lake, group_id):
    topic = table_topic(shop_changes, "orders")
    first = drain_once(shop_changes, lake, topic, group_id)
    replays: list = []
    with maintenance.rewrite_lock(lake.metadata):  # what a compaction of the lake holds
        replay = threading.Thread(target=lambda: replays.append(
            drain_once(shop_changes, lake, topic, group_id, replay=Replay(offsets={0: 0}))))
        replay.start()
        replay.join(timeout=5)
        # (its own cursor: the replay thread uses lake.con)
        assert replay.is_alive() and \
            commit.read_positions(lake.con.cursor(), topic).offsets == {0: first.partitions[0].end}
    replay.join(timeout=120)

    assert not replay.is_alive() and replays[0].partitions[0].start == 0
    assert_exactly_once(shop_changes, lake, topic, replays[0])


def test_a_drain_task_drains_each_slice_in_its_own_commit_and_fails_after_trying_all(shop_changes, lake,
                                                                                     scratch_topic):
    """tidewater.drain.drain_slices, what each cdc_drain task runs: one slice failing does not keep the task's other
    slices from landing; then the task fails with that slice's error (DrainsFailed naming each when several)."""
    good = scratch_topic
    bad, worse = (f"scratch{uuid.uuid4().hex[:8]}.shop.order_items_{name}" for name in ("bad", "worse"))
    settings = lake.settings(shop_changes)
    try:
        produce(shop_changes, good, real_events(shop_changes, 10))
        for topic in (bad, worse):
            produce(shop_changes, topic, [*real_events(shop_changes, 10), b"garbage", b"more garbage"])
        ids = drain.kafka_topic_ids(settings, [good, bad, worse])
        slices = {topic: {"topic": topic, "topic_id": ids[topic], "partition": 0, "until": until}
                  for topic, until in ((good, 10), (bad, 12), (worse, 12))}
        landed: list[str] = []

        with pytest.raises(drainer.QuarantineLimitExceeded, match=re.escape(f"{bad}: 2 of 12 records")):
            drain.drain_slices(settings, [slices[bad], slices[good]], {}, lambda result: landed.append(result.topic))

        assert landed == [good]  # after the failed slice, in the same task
        assert commit.read_positions(lake.con, good).offsets == {0: 10}
        assert commit.read_positions(lake.con, bad).offsets.get(0, 0) == 0  # its commit never happened

        with pytest.raises(drain.DrainsFailed) as failed:
            drain.drain_slices(settings, [slices[bad], slices[good], slices[worse]], {}, landed.append)
        assert str(failed.value).startswith(f"{bad}[0]: QuarantineLimitExceeded: {bad}: 2 of 12 records")
        assert f"; {worse}[0]: QuarantineLimitExceeded: {worse}: 2 of 12" in str(failed.value)

        results = drain.drain_slices(settings, [slices[bad], slices[good]], {"accept_quarantine_topic": bad},
                                     lambda result: None)
        assert [(r["topic"], r["rows"], r["quarantined"]) for r in results] == [(bad, 10, 2), (good, 0, 0)]
        assert commit.read_positions(lake.con, bad).offsets == {0: 12}
    finally:
        for topic in (bad, worse):
            delete_topic(shop_changes, topic)
