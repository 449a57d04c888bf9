"""Alert emails end to end, received by real SMTP servers (docs/alerts.md).

- freshness and failure emails: `airflow dags test freshness_monitor` against a scratch lake (its own bucket and
  DuckLake catalog) and Kafka, mailing an aiosmtpd server this test starts on a free port (so every message it
  receives is counted exactly). One Airflow run per path of the DAG (a check that mails, a task that fails); the
  checks after it (a breach still there, its recovery) call the task's code, `sources.check_freshness`, in this
  process against the same services, state object and SMTP server: an `airflow dags test` costs 30-60 s of
  Airflow start-up, the check itself a few seconds;
- the deadline email: the running scheduler and triggerer (the `airflow_api` fixture), mailing the stack's
  SMTP sink (.stack/mail), for a cdc_drain run held queued (the DAG paused) past a 5-second deadline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.alerts import check_in_process, dags_test_mailing, html_body, point_smtp, wait_for
from tests.support.lake import new_lake
from tidewater.alerts import sources
from tidewater.alerts.sources import MARTS_POINTER_KEY, STATE_KEY
from tidewater.config import REPO_ROOT, Settings
from tidewater_dev.mailsink import read_messages


@pytest.fixture(autouse=True)
def _shop_migrated(shop) -> None:
    """The monitor reads the replication slots as the shop's application role, which the migrations create
    (on a fresh stack these tests may run before any other test has migrated the shop)."""


def _data_mails(maildir: Path) -> list[EmailMessage]:
    """The messages about the lake and topics: the connector and slot checks watch the shared connector and every
    slot of the server, which other tests pause and move (tests/integration/test_cdc_health_alerts.py tests them)."""
    return [m for m in read_messages(maildir)
            if not re.match(r"\[tidewater\] \w+ (Debezium connector|replication slot) ", str(m["Subject"]))]


def _data_breaches(lake) -> set[str]:
    return {key for key in lake.bucket.get_json(STATE_KEY) if not key.startswith(("connector:", "task:", "slot:"))}


def _publish_pointer(lake, published_at: datetime) -> None:
    lake.bucket.put_json(MARTS_POINTER_KEY, {"publication_id": f"pub-{published_at:%Y%m%dT%H%M%S}",
                                      "published_at": published_at.isoformat()})


def _data_check(lake, **env: str) -> list:
    """_check_in_process's transitions about the lake and topics (see _data_mails)."""
    return [t for t in check_in_process(lake, **env) if not t.measurement.key.startswith(("connector:", "task:",
                                                                                          "slot:"))]


def _commit_changes(lake, table: str, *source_ts: datetime) -> None:
    """Changes of `table` dated `source_ts`, committed to the lake's change table (only the columns the monitor
    reads; the drain's own tables have every column of tidewater.lake), in a Parquet file on S3 as the drain lands
    them (DuckLake would keep so few rows inlined in the catalog, where no S3 credential is needed to read them)."""
    lake.con.execute(f"CREATE TABLE IF NOT EXISTS lake.main.{table} (_source_ts TIMESTAMPTZ, _op VARCHAR)")
    lake.con.executemany(f"INSERT INTO lake.main.{table} VALUES (?, 'u')", [[ts] for ts in source_ts])
    lake.con.execute("CALL ducklake_flush_inlined_data('lake', schema_name => 'main', table_name => ?)", [table])
    assert lake.bucket.keys(f"lake/main/{table}/"), f"no Parquet file of lake.main.{table}"


def _set_lake_positions(lake, settings, topic: str, offsets: dict[int, int]) -> None:
    """The lake's drain positions of `topic`, as a drain's commit leaves them."""
    from tidewater import drain
    from tidewater.lake import commit

    commit.ensure_tables(lake.con)
    topic_id = drain.kafka_topic_id(settings, topic)
    lake.con.execute("BEGIN TRANSACTION")
    lake.con.execute(f"DELETE FROM {commit.POSITIONS} WHERE topic = ?", [topic])
    lake.con.executemany(f"INSERT INTO {commit.POSITIONS} VALUES (?, ?, ?, ?, 0, now())",
                         [[topic, topic_id, partition, offset] for partition, offset in offsets.items()])
    lake.con.execute("COMMIT")


@pytest.fixture
def two_partition_topic(settings) -> Iterator[tuple[str, dict]]:
    """A new topic with 3 records in partition 0 and 2 in partition 1, and the Kafka connection of a new consumer
    group that committed both partitions' ends (a monitor that trusted the group would see no lag)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from tidewater.cdc.access import admin_config
    from tidewater.cdc.topics import consumer_config

    topic = f"alerts{uuid.uuid4().hex[:8]}.shop.orders"
    admin = AdminClient(admin_config(os.environ))  # kept alive until its futures resolve
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result()
    try:
        producer = Producer(admin_config(os.environ))
        for partition, count in ((0, 3), (1, 2)):
            for number in range(count):
                producer.produce(topic, value=b"{}", key=str(number).encode(), partition=partition)
        assert producer.flush(30) == 0
        kafka = json.loads(os.environ["AIRFLOW_CONN_KAFKA_DEFAULT"])
        kafka["extra"]["group.id"] = f"alerts-test-{uuid.uuid4().hex[:8]}"
        group = Consumer(consumer_config(settings, **{"group.id": kafka["extra"]["group.id"]}))
        group.commit(offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 2)], asynchronous=False)
        group.close()
        yield topic, kafka
    finally:
        admin.delete_topics([topic])[topic].result()


def test_each_breach_mails_once_through_airflow_then_once_when_it_recovers(settings, smtp_server, monkeypatch,
                                                                           two_partition_topic):
    port, maildir = smtp_server
    topic, kafka = two_partition_topic
    with new_lake(settings) as lake:
        _publish_pointer(lake, datetime.now(UTC) - timedelta(hours=3))
        # orders: its newest change not in the future is old; the future-dated one does not make it fresh and is
        # named. customers changed just now: no mail.
        _commit_changes(lake, "orders", datetime(2026, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC))
        _commit_changes(lake, "customers", datetime.now(UTC))
        # The lake drained 1 record of partition 0 and none of partition 1: 2 + 2 behind, whatever the group says.
        _set_lake_positions(lake, settings, topic, {0: 1})
        monitor = {"TIDEWATER_DRAIN_TOPIC_REGEX": f"^{re.escape(topic)}$", "TIDEWATER_FRESHNESS_MAX_TOPIC_LAG": "3",
                   "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(kafka), "TIDEWATER_FRESHNESS_MAX_MART_AGE_MINUTES": "60",
                   "TIDEWATER_FRESHNESS_MAX_CHANGE_AGE_MINUTES": "60"}

        run = dags_test_mailing("freshness_monitor", port, **lake.env, **monitor)

        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        mails = {str(m["Subject"]).split(":")[0]: m for m in _data_mails(maildir)}
        assert sorted(mails) == [f"[tidewater] STALE lag of topic {topic}",
                                 "[tidewater] STALE newest landed change of table orders",
                                 "[tidewater] STALE published marts"], sorted(mails)
        marts = mails["[tidewater] STALE published marts"]
        assert re.fullmatch(r"\[tidewater\] STALE published marts: 18\d minutes old \(limit 60 minutes\)",
                            marts["Subject"]), marts["Subject"]
        assert marts["To"] == settings.alert_email_to
        orders = mails["[tidewater] STALE newest landed change of table orders"]
        assert orders["Subject"].endswith(" minutes old (limit 60 minutes)")
        assert "newest _source_ts 2026-01-01T00:00:00+00:00 in lake.main.orders" in html_body(orders)
        assert "ignored 1 change(s) dated after " in html_body(orders)
        assert "the newest at 2099-01-01T00:00:00+00:00" in html_body(orders)
        lag = mails[f"[tidewater] STALE lag of topic {topic}"]
        assert lag["Subject"] == f"[tidewater] STALE lag of topic {topic}: 4 records behind (limit 3 records)"
        assert "lake.tidewater.drain_positions" in html_body(lag)
        assert "partition(s) 1 never drained count from the low watermark" in html_body(lag)
        assert _data_breaches(lake) == {"marts", "change:orders", f"lag:{topic}"}

        # Checked again (the state Airflow's run saved is read back): still breached, nothing more is sent.
        point_smtp(monkeypatch, port)
        assert _data_check(lake, **monitor) == []
        assert _data_check(lake, **monitor) == []
        assert len(_data_mails(maildir)) == 3

        _publish_pointer(lake, datetime.now(UTC))
        _commit_changes(lake, "orders", datetime.now(UTC))
        _set_lake_positions(lake, settings, topic, {0: 3, 1: 2})
        recovered = _data_check(lake, **monitor)
        again = _data_check(lake, **monitor)

        assert sorted(t.kind + " " + t.measurement.key for t in recovered) == [
            "recovered change:orders", f"recovered lag:{topic}", "recovered marts"]
        assert again == []
        subjects = [str(m["Subject"]) for m in _data_mails(maildir)][3:]
        assert len(subjects) == 3, subjects
        assert f"[tidewater] RECOVERED lag of topic {topic}: 0 records behind (limit 3 records)" in subjects
        assert any(s.startswith("[tidewater] RECOVERED newest landed change of table orders: ") for s in subjects)
        # Published just before the check: well within the limit.
        [marts_back] = [s for s in subjects if "published marts" in s]
        minutes = re.fullmatch(r"\[tidewater\] RECOVERED published marts: (\d+) minutes old \(limit 60 minutes\)",
                               marts_back)
        assert minutes and int(minutes[1]) < 10, marts_back
        assert _data_breaches(lake) == set()


def test_the_monitor_reads_the_lakes_parquet_files_with_the_pipelines_s3_user(settings):
    with new_lake(settings) as lake:
        now = datetime.now(UTC)
        _commit_changes(lake, "orders", now - timedelta(minutes=3))
        con = sources.open_lake_catalog(lake.settings(settings))
        try:
            [orders] = sources.change_measurements(con, settings, now)
        finally:
            con.close()

    assert orders.key == "change:orders" and round(orders.value) == 3, orders


def test_a_catalog_no_drain_created_reads_as_an_empty_lake_and_a_missing_one_is_named_without_its_password(
        settings, scratch_db, monkeypatch):
    """An empty catalog database (a new deployment before its first drain), attached read-only as the monitor
    does: no change tables, no positions. A catalog database that does not exist fails naming the connection,
    and the error (which the failure email quotes) does not carry the password."""
    from dataclasses import replace

    import psycopg

    from tidewater.config import get_connection

    writer = get_connection(settings.lake_catalog_conn_id)
    empty = psycopg.conninfo.conninfo_to_dict(scratch_db)["dbname"]

    def catalog_conn(database: str) -> Settings:
        conn_id = f"lake_catalog_probe_{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
            "conn_type": "postgres", "host": writer.host, "port": writer.port, "login": writer.login,
            "password": writer.password, "schema": database}))
        return replace(settings, lake_catalog_conn_id=conn_id)

    con = sources.open_lake_catalog(catalog_conn(empty))
    try:
        assert (sources.change_tables(con), sources.lake_positions(con)) == ([], {})
    finally:
        con.close()
    missing = catalog_conn(f"{empty}_missing")
    with pytest.raises(sources.LakeCatalogError) as failed:
        sources.open_lake_catalog(missing)
    assert f"connection {missing.lake_catalog_conn_id!r}" in str(failed.value)
    assert writer.password and writer.password not in str(failed.value)


def test_a_failed_task_mails_its_error_and_log_link(settings, smtp_server):
    port, maildir = smtp_server
    bucket = f"no-such-bucket-{uuid.uuid4().hex[:8]}"

    run = dags_test_mailing("freshness_monitor", port, TIDEWATER_LAKE_BUCKET=bucket)

    assert run.returncode != 0, "the check should fail on a bucket that does not exist"
    [failure] = read_messages(maildir)
    assert failure["Subject"].startswith("[tidewater] FAILED freshness_monitor.check_freshness: ")
    body = html_body(failure)
    assert f"lake bucket &#x27;{bucket}&#x27; is not reachable" in body
    assert "check TIDEWATER_LAKE_BUCKET" in body
    base = os.environ["AIRFLOW__API__BASE_URL"].rstrip("/")
    assert f'href="{base}/dags/freshness_monitor/runs/manual__' in body
    assert "/tasks/check_freshness?try_number=1" in body


# --- Deadline Alerts under the real scheduler -------------------------------------------------------------

STACK_MAIL = Path(os.environ.get("TIDEWATER_STACK_DIR", REPO_ROOT / ".stack")) / "mail"


def _ui(api, path: str) -> dict:
    import requests

    response = requests.get(f"{api.base_url}/ui/{path.lstrip('/')}",
                            headers={"Authorization": f"Bearer {api.token()}"}, timeout=60)
    response.raise_for_status()
    return response.json()


def _mails_about(run_id: str) -> list[EmailMessage]:
    return [m for m in read_messages(STACK_MAIL) if run_id in str(m["Subject"])]


def _reserialize(deadline_minutes: str | None) -> None:
    """Writes the DAGs to the metadata DB as parsed with this drain deadline (None: the settings' own)."""
    # Airflow skips writing a DAG serialized less than min_serialized_dag_update_interval (30 s) ago: just after
    # the dag-processor's own write (a freshly started stack) the reserialized DAG would not be written at all.
    env = {**os.environ, "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0"}
    if deadline_minutes is not None:
        env["TIDEWATER_DRAIN_DEADLINE_MINUTES"] = deadline_minutes
    done = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "airflow"), "dags", "reserialize"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _trigger_held_run(api, dag_id: str) -> tuple[dict, dict]:
    """A run of the (paused) DAG created while its serialized DAG has a 6 s deadline: (run, its deadline).

    The deadline is part of the DAG as parsed, so the DAGs are reserialized with a 6 s drain deadline just
    before the run is created. The dag-processor writes them back as it parses them (every ~30 s), and
    `airflow dags test`, run by any test at the same time, writes them without deadlines (docs/alerts.md):
    a run that did not get the 6 s deadline is deleted and another one created. The API server serves its cached
    copy of a DAG for up to two min_serialized_dag_update_interval (30 s) after a write, so this goes on for 90 s.
    """
    seen = []
    give_up = time.monotonic() + 90
    while time.monotonic() < give_up:
        run_id = f"alerts_test_{uuid.uuid4().hex[:10]}"
        _reserialize("0.1")
        run = api.request("POST", f"dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
        found = _ui(api, f"dags/{dag_id}/dagRuns/{run_id}/deadlines")["deadlines"]
        queued = datetime.fromisoformat(run["queued_at"])
        if found and datetime.fromisoformat(found[0]["deadline_time"]) == queued + timedelta(seconds=6):
            return run, found[0]
        seen.append(f"queued {queued:%H:%M:%S.%f}: {[d['deadline_time'] for d in found] or 'no deadline'}")
        api.request("DELETE", f"dags/{dag_id}/dagRuns/{run_id}")
    pytest.fail(f"no run of {dag_id} got a 6 s deadline in 90 s ({'; '.join(seen)}): is its DeadlineAlert in the "
                "scheduler's copy of the DAG? (an older dag-processor may run older code: `make airflow-down && "
                "make airflow-up`)")


def test_a_drain_run_held_past_its_deadline_mails_exactly_once(airflow_api):
    dag_id = "cdc_drain"
    was_paused = airflow_api.request("GET", f"dags/{dag_id}")["is_paused"]
    # Held honestly: a paused DAG's queued run never starts, so it cannot finish before its deadline.
    airflow_api.request("PATCH", f"dags/{dag_id}", json={"is_paused": True})
    run_id = None
    try:
        run, deadline = _trigger_held_run(airflow_api, dag_id)
        run_id = run["dag_run_id"]

        [mail] = wait_for(f"the deadline email of run {run_id} in {STACK_MAIL}", lambda: _mails_about(run_id))
        # One deadline, missed once: the triggerer sends its callback once. Give a duplicate time to show up.
        time.sleep(10)

        assert len(_mails_about(run_id)) == 1
        assert _ui(airflow_api, f"dags/{dag_id}/dagRuns/{run_id}/deadlines")["deadlines"][0]["missed"] is True
        assert airflow_api.request("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"] == "queued"
        assert mail["Subject"] == f"[tidewater] DEADLINE missed: cdc_drain run {run_id}"
        body = html_body(mail)
        assert f"run <code>{run_id}</code>" in body
        queued = datetime.fromisoformat(run["queued_at"])
        assert datetime.fromisoformat(deadline["deadline_time"]) == queued + timedelta(seconds=6)
        assert f"deadline <b>{deadline['deadline_time'][:19].replace('T', ' ')}" in body
        assert f'href="{airflow_api.base_url}/dags/cdc_drain/runs/{quote(run_id)}"' in body
    finally:
        if run_id:  # it never ran: nothing else to clean up
            airflow_api.request("DELETE", f"dags/{dag_id}/dagRuns/{run_id}")
        airflow_api.request("PATCH", f"dags/{dag_id}", json={"is_paused": was_paused})
        _reserialize(None)
