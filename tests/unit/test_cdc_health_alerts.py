"""The pure side of the connector, replication-slot and future-dated-change alerts (docs/alerts.md)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import escape

import yaml

from tidewater.alerts import freshness, sources
from tidewater.alerts.freshness import ConnectorHealth
from tidewater.alerts.messages import CURL
from tidewater.cdc import connector
from tidewater.config import REPO_ROOT, Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TRACE = "org.apache.kafka.connect.errors.ConnectException: boom <here>\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)\n"


def task(state: str | None, trace: str = TRACE) -> ConnectorHealth:
    return ConnectorHealth(connector="shop-postgres", task=0, state=state, connect_url="http://connect:8083",
                           trace=trace, max_lines=2)


def whole(state: str | None) -> ConnectorHealth:
    return ConnectorHealth(connector="shop-postgres", task=None, state=state, connect_url="http://connect:8083")


def test_a_failed_task_mails_once_then_once_when_it_runs_again():
    state, [down] = freshness.decide({}, [whole("RUNNING"), task("FAILED")], NOW)
    assert down.kind == "breach" and down.measurement.key == "task:shop-postgres/0"
    assert freshness.decide(state, [whole("RUNNING"), task("FAILED")], NOW) == (state, [])

    state, [up] = freshness.decide(state, [task("RUNNING")], NOW + timedelta(minutes=5))
    assert (up.kind, up.since, state) == ("recovered", NOW.isoformat(), {})
    assert up.email().subject == "[tidewater] RECOVERED Debezium connector shop-postgres task 0: RUNNING"


def test_a_connector_is_in_breach_unless_running_and_unknown_states_keep_the_breach():
    for bad in ("PAUSED", "FAILED", "UNASSIGNED", "UNREACHABLE", "NOT REGISTERED"):
        assert whole(bad).breached, bad
    assert whole("RUNNING").breached is False
    assert task("PAUSED").breached is False  # a paused connector's tasks: the connector's breach says it
    breached = {"task:shop-postgres/0": {"since": "earlier", "subject": "x"}}
    assert freshness.decide(breached, [task(None)], NOW) == (breached, [])


def test_the_task_email_names_connector_task_and_state_quotes_the_trace_and_says_how_to_restart():
    email = task("FAILED").email(recovered=False, since=NOW.isoformat())

    assert email.subject == "[tidewater] DOWN Debezium connector shop-postgres task 0: FAILED"
    assert "ConnectException: boom &lt;here&gt;\n\tat a.b(C.java:1)\n… (1 more lines in the log)" in email.html
    assert escape(f"{CURL} -X POST http://connect:8083/connectors/shop-postgres/tasks/0/restart") in email.html
    assert "make cdc-register" in email.html


def test_each_connector_state_gets_its_own_remedy():
    def html(state: str) -> str:
        return whole(state).email(recovered=False, since="s").html

    assert escape(f"{CURL} -X PUT http://connect:8083/connectors/shop-postgres/resume") in html("PAUSED")
    assert "restart?includeTasks=true&amp;onlyFailed=true" in html("FAILED")
    assert "does not answer at http://connect:8083" in html("UNREACHABLE")
    assert "make cdc-register" in html("NOT REGISTERED")
    assert whole("UNREACHABLE").email(recovered=False, since="s").subject == \
        "[tidewater] DOWN Debezium connector shop-postgres: UNREACHABLE"


def slot_row(**changes) -> dict:
    row = {"slot_name": "tidewater_shop", "slot_type": "logical", "database": "shop", "active": True,
           "wal_status": "reserved", "retained_bytes": 5_000, "safe_wal_size": 4_000_000_000,
           "restart_lsn": "0/1", "confirmed_flush_lsn": "0/2", "keep_size": "4GB"}
    return row | changes


def test_slot_lag_is_wal_retained_against_the_limit():
    settings = Settings(max_slot_lag_bytes=1_000_000)
    within = sources.slot_measurement(slot_row(), settings)
    over = sources.slot_measurement(slot_row(retained_bytes=2_500_000, active=False), settings)

    assert (within.key, within.breached, over.breached) == ("slot:tidewater_shop", False, True)
    state, [stale] = freshness.decide({}, [over], NOW)
    assert stale.email().subject == ("[tidewater] STALE replication slot tidewater_shop: 2,500,000 bytes of WAL "
                                     "retained (limit 1,000,000 bytes)")
    assert "NOT active" in over.detail and "max_slot_wal_keep_size = 4GB" in over.detail
    assert freshness.decide(state, [within], NOW)[1][0].kind == "recovered"


def test_a_lost_slot_is_a_breach_whatever_it_retains_and_says_to_recreate_it():
    lost = sources.slot_measurement(slot_row(wal_status="lost", retained_bytes=None, safe_wal_size=None),
                                    Settings(connect_url="http://connect:8083"))

    assert lost.breached is True
    email = lost.email(recovered=False, since="s")
    assert email.subject.startswith("[tidewater] STALE replication slot tidewater_shop: WAL lost, slot invalidated")
    assert "pg_drop_replication_slot(&#x27;tidewater_shop&#x27;)" in email.html
    assert escape(f"{CURL} -X DELETE http://connect:8083/connectors/shop-postgres/offsets") in email.html
    assert "new snapshot" in email.html


def test_lag_counts_from_the_lakes_position_and_from_the_low_watermark_where_the_lake_never_drained():
    watermarks = {0: (0, 10), 1: (4, 7), 2: (0, 3)}  # partition → (low, high)

    lag = sources.topic_lag("shop.shop.orders", watermarks, ("id-1", {0: 6, 1: 7}), "id-1", limit=5)

    assert (lag.key, lag.value, lag.breached) == ("lag:shop.shop.orders", 4 + 0 + 3, True)
    assert "lake.tidewater.drain_positions" in lag.detail
    assert "partition(s) 2 never drained count from the low watermark" in lag.detail
    never = sources.topic_lag("t", watermarks, None, "id-1", limit=100)
    assert never.value == 10 + 3 + 3


def test_a_topic_recreated_since_the_lake_drained_it_counts_every_retained_record_and_says_why():
    lag = sources.topic_lag("t", {0: (0, 5)}, ("old-id", {0: 5}), "new-id", limit=100)

    assert lag.value == 5
    assert "earlier topic of this name (id old-id, now new-id)" in lag.detail
    assert "accept_recreated_topic" in lag.detail


def test_a_future_dated_change_does_not_make_a_table_fresh_and_is_named_in_the_alert():
    measurement = sources.change_measurement(
        "orders", newest=NOW - timedelta(hours=3), where="lake.main.orders", future_count=2,
        future_newest=datetime(2099, 1, 1, tzinfo=UTC), cutoff=NOW + sources.FUTURE_TOLERANCE, limit=60, now=NOW)

    assert (measurement.value, measurement.breached) == (180, True)
    assert "ignored 2 change(s) dated after 2026-11-25T12:05:00+00:00" in measurement.detail
    assert "the newest at 2099-01-01T00:00:00+00:00" in measurement.detail
    assert "newest _source_ts 2026-11-25T09:00:00+00:00 in lake.main.orders" in measurement.detail
    plain = sources.change_measurement("orders", newest=NOW, where="w", future_count=0, future_newest=None,
                                       cutoff=NOW, limit=60, now=NOW)
    assert "ignored" not in plain.detail


def test_the_monitors_names_of_the_lake_are_the_lakes_own():
    from tidewater.gate import publish
    from tidewater.lake import catalog, commit

    assert (sources.LAKE, sources.POSITIONS, sources.MARTS_POINTER_KEY) == (
        catalog.LAKE, commit.POSITIONS, publish.POINTER_KEY)


def test_the_heartbeat_row_is_keyed_by_the_connectors_own_slot():
    config = connector.render_config(Settings())

    assert re.search(r"VALUES \('([^']+)'", config["heartbeat.action.query"])[1] == config["slot.name"]
    assert config["heartbeat.action.query"].startswith("INSERT INTO tidewater_cdc.heartbeat ")


def test_both_stacks_set_max_slot_wal_keep_size_from_the_same_setting():
    services = yaml.safe_load((REPO_ROOT / "docker" / "services.yaml").read_text())["services"]
    stack_sh = (REPO_ROOT / "stack" / "stack.sh").read_text()

    assert "max_slot_wal_keep_size=${TIDEWATER_PG_MAX_SLOT_WAL_KEEP_SIZE}" in services["shop-db"]["command"]
    assert "max_slot_wal_keep_size = '$TIDEWATER_PG_MAX_SLOT_WAL_KEEP_SIZE'" in stack_sh
    assert Settings.from_env({"TIDEWATER_MAX_SLOT_LAG_BYTES": "4096"}).max_slot_lag_bytes == 4096
