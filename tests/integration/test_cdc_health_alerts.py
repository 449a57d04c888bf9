"""freshness_monitor's connector and replication-slot alerts, end to end (docs/alerts.md).

Each test registers its own Debezium connector (own name, slot, topic prefix; only shop.products, no snapshot)
so the shared `shop-postgres` connector is never paused or broken, and points the monitor at it with
TIDEWATER_CDC_CONNECTOR, on a scratch lake, mailing an SMTP server started on a free port. The connector test runs
`airflow dags test freshness_monitor` for the first breach; the checks after it, and the slot test's, call the
task's code in this process against the same services (tests/integration/test_alerts.py says why). Only the
messages about the test's own connector and slot are counted: the monitor also watches every other slot of the
server, which other tests may move.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from html import escape

import psycopg
import pytest
from psycopg import sql

from tests.support.alerts import check_in_process, dags_test_mailing, html_body, point_smtp, wait_for
from tests.support.connectors import remove_connector
from tests.support.lake import new_lake
from tidewater.alerts.messages import CURL
from tidewater.cdc import connector
from tidewater.config import Settings
from tidewater_dev.mailsink import read_messages


@dataclasses.dataclass(frozen=True)
class ScratchConnector:
    name: str
    slot: str
    prefix: str
    publication: str


def _task_state(settings: Settings, name: str) -> str | None:
    try:
        status = connector.status(settings, name)
    except connector.ConnectError:
        return None
    return status.task_states[0] if status.task_states else None


def _slot_lag(settings: Settings, slot: str) -> int | None:
    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
                           "FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
    return None if row is None else row[0]


@pytest.fixture
def scratch_connector(cdc: Settings) -> Iterator[tuple[ScratchConnector, dict[str, str]]]:
    """A second connector's identity and config (registered by the test); removed with its slot and topics."""
    suffix = uuid.uuid4().hex[:8]
    # `publication` is the test's own, if it wants one (the config names the shared tidewater_shop).
    made = ScratchConnector(name=f"tw-health-{suffix}", slot=f"tw_health_{suffix}", prefix=f"twhealth{suffix}",
                            publication=f"tw_health_{suffix}")
    config = connector.render_config(cdc) | {
        "slot.name": made.slot, "topic.prefix": made.prefix, "table.include.list": "shop.products",
        "snapshot.mode": "no_data", "heartbeat.interval.ms": "1000",
        "heartbeat.action.query": f"INSERT INTO tidewater_cdc.heartbeat (slot_name) VALUES ('{made.slot}') "
                                  "ON CONFLICT (slot_name) DO UPDATE SET beat_at = now()",
    }
    try:
        yield made, config
    finally:
        remove_connector(cdc, made.name, made.slot, made.prefix, cdc.shop_conninfo(admin=True))
        with psycopg.connect(cdc.shop_conninfo(admin=True), autocommit=True) as conn:
            conn.execute("DELETE FROM tidewater_cdc.heartbeat WHERE slot_name = %s", (made.slot,))
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(made.publication)))


def _mails_about(maildir, *names: str) -> list[str]:
    return [str(m["Subject"]) for m in read_messages(maildir) if any(name in str(m["Subject"]) for name in names)]


def test_a_failed_connector_task_mails_once_then_once_when_it_runs_again(cdc, smtp_server,
                                                                         scratch_connector, monkeypatch):
    port, maildir = smtp_server
    made, config = scratch_connector
    # Its task fails at start: the publication it names does not exist (and it may not create one).
    connector.register(cdc, config | {"publication.name": made.publication}, made.name)
    wait_for(f"task 0 of {made.name} to fail", lambda: _task_state(cdc, made.name) == "FAILED")
    with new_lake(cdc) as lake:
        monitor = {"TIDEWATER_CDC_CONNECTOR": made.name, "TIDEWATER_ALERT_ERROR_MAX_LINES": "3",
                   "TIDEWATER_DRAIN_TOPIC_REGEX": r"^tidewater-alerts-test-no-topic$"}

        run = dags_test_mailing("freshness_monitor", port, **lake.env, **monitor)
        point_smtp(monkeypatch, port)
        again = check_in_process(lake, **monitor)  # the state Airflow's run saved is read back: nothing more

        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert [t for t in again if made.name in t.measurement.key] == []
        [down] = [m for m in read_messages(maildir) if made.name in str(m["Subject"])]
        assert down["Subject"] == f"[tidewater] DOWN Debezium connector {made.name} task 0: FAILED"
        body = html_body(down)
        assert "Publication autocreation is disabled" in body  # the trace's first lines name the cause ...
        assert "more lines in the log" in body  # ... and only the first 3 of them
        assert escape(f"{CURL} -X POST {cdc.connect_url}/connectors/{made.name}/tasks/0/restart") in body

        # The fix the email asks for: remove the cause, restart the task.
        with psycopg.connect(cdc.shop_conninfo(admin=True), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE shop.products")
                         .format(sql.Identifier(made.publication)))
        connector.restart_task(cdc, 0, made.name)
        wait_for(f"task 0 of {made.name} to run again", lambda: _task_state(cdc, made.name) == "RUNNING")
        recovered = check_in_process(lake, **monitor)

        assert [(t.kind, t.measurement.key) for t in recovered if made.name in t.measurement.key] == [
            ("recovered", f"task:{made.name}/0")]
        assert _mails_about(maildir, made.name) == [
            f"[tidewater] DOWN Debezium connector {made.name} task 0: FAILED",
            f"[tidewater] RECOVERED Debezium connector {made.name} task 0: RUNNING"]
        assert not [key for key in lake.bucket.get_json("_alerts/freshness_state.json") if made.name in key]


def test_a_paused_connectors_slot_mails_once_over_its_limit_then_once_caught_up(cdc, smtp_server,
                                                                                scratch_connector, scratch_db,
                                                                                monkeypatch):
    port, maildir = smtp_server
    made, config = scratch_connector
    limit = 16 * 1024 * 1024
    connector.register(cdc, config, made.name)
    connector.wait_until_running(cdc, name=made.name)
    connector.wait_for_catch_up(cdc, slot=made.slot)
    connector.pause(cdc, made.name)
    try:
        wait_for(f"{made.name} to pause", lambda: connector.status(cdc, made.name).connector_state == "PAUSED")
        # WAL of any database of the server is held for the slot (Airflow's, here a scratch one), as is the
        # shop's own change of a captured table.
        with psycopg.connect(cdc.shop_conninfo(admin=True), autocommit=True) as conn:
            conn.execute("UPDATE shop.products SET updated_at = updated_at "
                         "WHERE product_id = (SELECT min(product_id) FROM shop.products)")
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            conn.execute("CREATE TABLE filler (n int, pad text)")
            while (_slot_lag(cdc, made.slot) or 0) <= 2 * limit:
                conn.execute("INSERT INTO filler SELECT g, repeat('x', 1000) FROM generate_series(1, 5000) g")
        with new_lake(cdc) as lake:
            monitor = {"TIDEWATER_CDC_CONNECTOR": made.name,
                       "TIDEWATER_DRAIN_TOPIC_REGEX": r"^tidewater-alerts-test-no-topic$",
                       "TIDEWATER_MAX_SLOT_LAG_BYTES": str(limit)}
            point_smtp(monkeypatch, port)

            check_in_process(lake, **monitor)
            again = check_in_process(lake, **monitor)

            assert [t for t in again if made.name in t.measurement.key or made.slot in t.measurement.key] == []
            subjects = _mails_about(maildir, f"slot {made.slot}:", made.name)
            assert len(subjects) == 2, subjects
            assert subjects[0] == f"[tidewater] DOWN Debezium connector {made.name}: PAUSED"
            assert subjects[1].startswith(f"[tidewater] STALE replication slot {made.slot}: ")
            assert subjects[1].endswith(f" bytes of WAL retained (limit {limit:,} bytes)")

            connector.resume(cdc, made.name)
            connector.wait_until_running(cdc, name=made.name)
            connector.wait_for_catch_up(cdc, slot=made.slot)
            # restart_lsn follows the confirmed position at the server's next running-transactions record.
            wait_for(f"slot {made.slot} back under {limit} bytes",
                     lambda: (_slot_lag(cdc, made.slot) or 0) < limit // 2)
            check_in_process(lake, **monitor)

            subjects = _mails_about(maildir, f"slot {made.slot}:", made.name)
            assert len(subjects) == 4, subjects
            assert subjects[2] == f"[tidewater] RECOVERED Debezium connector {made.name}: RUNNING"
            assert subjects[3].startswith(f"[tidewater] RECOVERED replication slot {made.slot}: ")
    finally:
        connector.resume(cdc, made.name)
