"""cdc_drain on events, under the test instance's real scheduler and triggerer: the watcher on the CDC topics (the
Kafka provider's MessageQueueTrigger) fires a run when a change arrives, and none while the topics are idle."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from tests.support import executors
from tests.support.alerts import wait_for
from tidewater import assets
from tidewater.drain import open_lake

DAG = "cdc_drain"


def _runs(airflow_api, **params) -> list[dict]:
    return airflow_api.request("GET", f"dags/{DAG}/dagRuns", params={"limit": 100, **params})["dag_runs"]


def _watcher_events(airflow_api, uri: str) -> list[dict]:
    """The asset events the watcher made (the triggerer marks them from_trigger)."""
    [asset] = [a for a in airflow_api.request("GET", "assets", params={"uri_pattern": uri})["assets"]
               if a["uri"] == uri]
    events = airflow_api.request("GET", "assets/events", params={"asset_id": asset["id"], "limit": 1000,
                                                                 "order_by": "-timestamp"})["asset_events"]
    return [event for event in events if event["extra"].get("from_trigger")]


def _landed(settings, email: str) -> bool:
    lake = open_lake(settings)
    try:
        return lake.con.execute("SELECT count(*) FROM lake.main.customers WHERE email = ?", [email]).fetchone()[0] > 0
    finally:
        lake.con.close()


@pytest.fixture
def unpaused_drain(airflow_api):
    """cdc_drain unpaused (its watcher registered when the dag-processor next parses it) until the test ends; then
    paused again once no run of it is active (tests.support.executors.unpaused)."""
    with executors.unpaused(airflow_api, DAG):
        yield


@pytest.mark.timeout(900)
def test_a_change_fires_a_drain_run_and_an_idle_topic_fires_none(shop_changes, airflow_api, unpaused_drain):
    settings = shop_changes
    uri = assets.cdc_changes(settings).uri
    seen = {run["dag_run_id"] for run in _runs(airflow_api)}
    email = f"watch-{uuid.uuid4().hex[:8]}@example.com"

    def write_and_look() -> dict | None:
        """A new customer (a change on a watched topic), until a watcher-triggered run exists."""
        with psycopg.connect(settings.shop_conninfo(), autocommit=True) as conn:
            conn.execute("INSERT INTO shop.customers (email, full_name) VALUES (%s, 'Wat Cher') "
                         "ON CONFLICT DO NOTHING", (email,))
            conn.execute("UPDATE shop.customers SET full_name = %s WHERE email = %s", (uuid.uuid4().hex, email))
        fired = [run for run in _runs(airflow_api, run_type=["asset_triggered"]) if run["dag_run_id"] not in seen]
        return fired[0] if fired else None

    # The watcher starts once the dag-processor has parsed the unpaused DAG (≤ its 30 s interval).
    fired = wait_for("a cdc_drain run triggered by the watcher", write_and_look, timeout=240, every=10)
    assert fired["triggered_by"] == "asset", fired
    wait_for("the change to land in the lake", lambda: _landed(settings, email), timeout=300, every=5)

    # Idle: once the runs the writes fired are over, no change → no watcher event and no run for a while.
    wait_for("cdc_drain's runs to finish", lambda: not _runs(airflow_api, state=["queued", "running"]), timeout=600)
    time.sleep(5)  # a run's last events, if any, reach the database
    events_before = len(_watcher_events(airflow_api, uri))
    runs_before = {run["dag_run_id"] for run in _runs(airflow_api)}
    time.sleep(45)
    assert len(_watcher_events(airflow_api, uri)) == events_before, "the watcher fired on an idle topic"
    assert [run for run in _runs(airflow_api, run_type=["asset_triggered"])
            if run["dag_run_id"] not in runs_before] == []
