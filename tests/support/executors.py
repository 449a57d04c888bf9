"""The test instance's Airflow on another executor for a while, its Celery workers, and DAG runs under its
scheduler.

The instance's Airflow is switched, never a second one started: `stack/stack.sh airflow-down`, then `airflow-up` with
TIDEWATER_AIRFLOW_EXECUTOR=celery (Redis and two `airflow celery worker` processes, stack/stack.sh), and back to how
it ran before at the end. Kafka, PostgreSQL and MinIO stay up throughout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from tidewater.config import REPO_ROOT
from tidewater_dev.airflow_api import AirflowApi

STACK_SH = str(REPO_ROOT / "stack" / "stack.sh")
# A worker that dies is noticed by its tasks' missing heartbeats: after 30 s here instead of Airflow's 300, and a task
# a dead worker had taken but not started is queued again after 60 s instead of 600 (docs/executors.md).
FAST_RECOVERY = {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                 "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                 "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60"}
ACTIVE = ("queued", "running")
ENDED = ("success", "failed")


def _run_dir() -> Path:
    return Path(os.environ["TIDEWATER_STACK_DIR"]) / "run"


def running_executor() -> str | None:
    """The executor the instance's Airflow runs (`local`, `celery`), None when it is stopped."""
    path = _run_dir() / "airflow-executor"
    return path.read_text().strip() if path.exists() else None


def stack(command: str, executor: str | None = None, fast_recovery: bool = True) -> None:
    """`stack/stack.sh COMMAND` on the test instance, with `executor` (and, unless told not to, FAST_RECOVERY)."""
    env = os.environ | ({"TIDEWATER_AIRFLOW_EXECUTOR": executor} if executor else {}) | (
        FAST_RECOVERY if executor and fast_recovery else {})
    done = subprocess.run([STACK_SH, command], capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, f"stack/stack.sh {command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@contextmanager
def airflow_on(executor: str) -> Iterator[AirflowApi]:
    """The instance's Airflow restarted on `executor` (with FAST_RECOVERY) inside the block; afterwards as it was
    before: stopped, or running the executor it ran (restarted without FAST_RECOVERY)."""
    before = running_executor()
    stack("airflow-down")
    stack("airflow-up", executor)
    try:
        yield AirflowApi()
    finally:
        stack("airflow-down")
        if before is not None:
            stack("airflow-up", before, fast_recovery=False)


def worker_of(hostname: str | None) -> str | None:
    """The native worker (`worker1`, ...) a task instance's host name names (tidewater.hostname: worker<i>.<host>)."""
    return hostname.split(".", 1)[0] if hostname and hostname.startswith("worker") else None


def kill_worker(worker: str) -> None:
    """SIGKILL to the worker's whole session: the Celery worker, its pool processes and the task processes they run."""
    pid = int((_run_dir() / f"airflow-{worker}.pid").read_text())
    os.killpg(pid, signal.SIGKILL)


def trigger(api: AirflowApi, dag_id: str, conf: dict | None = None) -> str:
    run_id = f"test__{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"
    api.request("POST", f"dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None,
                                                        "conf": conf or {}})
    return run_id


def task_instances(api: AirflowApi, dag_id: str, run_id: str) -> list[dict]:
    """Every task instance of the run, mapped ones one per map index (state, hostname, try_number, ...)."""
    return api.request("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})["task_instances"]


def wait_for_run(api: AirflowApi, dag_id: str, run_id: str, timeout_s: float) -> str:
    """The run's final state (success or failed)."""
    deadline = time.monotonic() + timeout_s
    while (state := api.request("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"]) not in ENDED:
        assert time.monotonic() < deadline, f"{dag_id} run {run_id} still {state} after {timeout_s:.0f} s"
        time.sleep(2)
    return state


@contextmanager
def unpaused(api: AirflowApi, dag_id: str, timeout_s: float = 900) -> Iterator[None]:
    """The DAG unpaused inside the block (the scheduler runs no task of a paused DAG); then, once no run of it is
    queued or running (unpausing may have added a scheduled one), paused again as it was, with no run of it active.

    Not paused first and then waited for: a paused DAG's runs get no further task scheduled. A run created between
    the last look and the pause (cdc_drain's watcher fires on new CDC records) is let finish, unpaused again."""
    was_paused = api.wait_for_dag(dag_id)["is_paused"]
    api.request("PATCH", f"dags/{dag_id}", json={"is_paused": False})
    try:
        yield
    finally:
        deadline = time.monotonic() + timeout_s
        while True:
            while active_runs(api, dag_id):
                assert time.monotonic() < deadline, f"{dag_id} still has active runs after {timeout_s:.0f} s"
                time.sleep(3)
            api.request("PATCH", f"dags/{dag_id}", json={"is_paused": was_paused})
            if not was_paused or not active_runs(api, dag_id):
                break
            api.request("PATCH", f"dags/{dag_id}", json={"is_paused": False})


def active_runs(api: AirflowApi, dag_id: str) -> int:
    """How many runs of the DAG are queued or running."""
    return api.request("GET", f"dags/{dag_id}/dagRuns", params={"state": list(ACTIVE), "limit": 1})["total_entries"]


def run_dag(api: AirflowApi, dag_id: str, timeout_s: float = 900) -> str:
    """One run of the DAG under the running scheduler and executor, to its end; returns its id (asserts success)."""
    with unpaused(api, dag_id, timeout_s):
        run_id = trigger(api, dag_id)
        state = wait_for_run(api, dag_id, run_id, timeout_s)
    assert state == "success", f"{dag_id} run {run_id} ended {state}: {unsuccessful(api, dag_id, run_id)}"
    return run_id


def unsuccessful(api: AirflowApi, dag_id: str, run_id: str) -> str:
    """The run's task instances that neither succeeded nor were skipped, with their states, for a failure message."""
    tasks = [f"{ti['task_id']}[{ti['map_index']}] {ti['state']}" for ti in task_instances(api, dag_id, run_id)
             if ti["state"] not in ("success", "skipped")]
    return "tasks not successful: " + (", ".join(tasks) or "none")


def run_scheduled_by(api: AirflowApi, uri: str, dag_id: str, since: datetime, timeout_s: float) -> str:
    """The id of the run of `dag_id` that the newest event of the asset `uri` since `since` scheduled, once the
    scheduler has created it (asserts such an event exists). The DAG must be unpaused: a paused DAG has no run
    queued by an asset event."""
    [asset] = [a for a in api.request("GET", "assets", params={"uri_pattern": uri})["assets"] if a["uri"] == uri]
    newest = {"asset_id": asset["id"], "timestamp_gte": since.isoformat(), "order_by": "-timestamp", "limit": 1}
    deadline = time.monotonic() + timeout_s
    while True:
        events = api.request("GET", "assets/events", params=newest)["asset_events"]
        assert events, f"no event of {uri} since {since:%H:%M:%S}: the runs that should have sent one landed nothing"
        runs = [run["run_id"] for run in events[0]["created_dagruns"] if run["dag_id"] == dag_id]
        if runs:
            return runs[0]
        assert time.monotonic() < deadline, f"{uri}'s event {events[0]['id']} scheduled no {dag_id} run in " \
                                            f"{timeout_s:.0f} s"
        time.sleep(3)
