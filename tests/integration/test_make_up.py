"""`make up`'s logic (tidewater_dev.up) on the test instance: every DAG unpaused, the shop's traffic running at the
rate asked for, a drain under way, a data_docs run where the docs were never built, idempotent; then `make down`'s:
every DAG paused, traffic stopped.

Marked `last`: unpaused DAGs run on their schedules and would change what other tests see. It puts back each
DAG's paused state as it found it."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tidewater_dev import up

pytestmark = pytest.mark.last
RATE = 3.0


def _wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f} s"
        time.sleep(2)
    return value


def test_up_starts_the_pipeline_live_and_down_stops_it(shop, airflow_api, tmp_path):
    api = airflow_api
    paused_before = {dag_id: api.wait_for_dag(dag_id)["is_paused"] for dag_id in up.DAGS}
    try:
        lines = up.start(api, shop, RATE)
        assert all(not api.request("GET", f"dags/{dag_id}")["is_paused"] for dag_id in up.DAGS)
        [traffic] = up.active_runs(api, up.TRAFFIC_DAG)
        assert traffic["conf"]["rate"] == RATE and traffic["conf"]["duration_s"] == up.TRAFFIC_SECONDS
        assert up.active_runs(api, up.DRAIN_DAG) or "triggered cdc_drain" in lines[2]
        # Again: nothing new but the same traffic.
        assert "already running" in up.ensure_traffic(api, RATE)
        assert [run["dag_run_id"] for run in up.active_runs(api, up.TRAFFIC_DAG)] == [traffic["dag_run_id"]]
        _wait(lambda: api.request("GET", f"dags/{up.TRAFFIC_DAG}/dagRuns/{traffic['dag_run_id']}")["state"]
              == "running", 180, "the traffic run starts")
        # Docs never built (a GX context without them): one data_docs run, once. Paused first, so the run stays
        # queued (and the run its unpausing may have started is over): what is active is what ensure_docs did.
        up.set_paused(api, True, (up.DOCS_DAG,))
        _wait(lambda: not up.active_runs(api, up.DOCS_DAG), 180, "no data_docs run is active")
        unbuilt = replace(shop, gx_context_dir=str(tmp_path / "gx"))
        assert "triggered data_docs" in up.ensure_docs(api, unbuilt)
        [docs_run] = up.active_runs(api, up.DOCS_DAG)
        assert f"data_docs run {docs_run['dag_run_id']} is queued" in up.ensure_docs(api, unbuilt)
        assert [run["dag_run_id"] for run in up.active_runs(api, up.DOCS_DAG)] == [docs_run["dag_run_id"]]
        api.request("DELETE", f"dags/{up.DOCS_DAG}/dagRuns/{docs_run['dag_run_id']}")
    finally:
        up.set_paused(api, True)
        stopped = up.stop_traffic(api)
    assert all(api.request("GET", f"dags/{dag_id}")["is_paused"] for dag_id in up.DAGS)
    assert stopped == [traffic["dag_run_id"]]
    _wait(lambda: not up.active_runs(api, up.TRAFFIC_DAG), 120, "no traffic run is left")
    _wait(lambda: api.request("GET", f"dags/{up.TRAFFIC_DAG}/dagRuns/{traffic['dag_run_id']}/taskInstances/"
                                     "run_traffic")["state"] not in ("running", "queued", "scheduled"),
          120, "the traffic task ends")
    for dag_id, paused in paused_before.items():
        if not paused:
            api.request("PATCH", f"dags/{dag_id}", json={"is_paused": False})
