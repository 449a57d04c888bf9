"""``make up`` / ``make down``: the whole pipeline live on the native stack, and stopped again.

  python -m tidewater_dev.up [--rate R] [--timeout S]   unpause, traffic, first drain, wait for a publication
  python -m tidewater_dev.up down                        pause every DAG, stop the shop's traffic

``make up`` starts the services, Airflow and the proxy first (stack/stack.sh up, airflow-up, proxy-up); then this
module, against the running Airflow's REST API:

1. seeds the shop once (as ``make demo`` does);
2. unpauses every Tidewater DAG (``DAGS``): from then on the scheduler runs them on their schedules (cdc_drain
   every TIDEWATER_DRAIN_INTERVAL_MINUTES, the warehouse on the lake's asset, the monitors on theirs);
3. keeps one run of ``shop_traffic`` going at ``rate`` operations per second (TIDEWATER_SIMULATOR_RATE, or
   ``make up RATE=…``) for a week: a running one at that rate is kept, one at another rate is replaced;
4. triggers cdc_drain at once unless a run of it is queued or running, so the first publication comes soon;
5. waits until the marts catalog has a publication (tidewater.gate.publish), triggers data_docs if the docs were
   never built, then prints where to look.

All of it is idempotent: run it again and it only does what is missing. ``down`` pauses the same DAGs and marks
the running traffic run successful, which ends its task (runs already under way finish).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import requests

from tidewater.config import Settings
from tidewater.gate import publish
from tidewater_dev.airflow_api import AirflowApi

TRAFFIC_DAG = "shop_traffic"
DRAIN_DAG = "cdc_drain"
WAREHOUSE_DAG = "warehouse"
DOCS_DAG = "data_docs"
# Every DAG of dags/ and the shop example's traffic DAG (tests/unit/test_up.py keeps the list whole).
DAGS = (DRAIN_DAG, WAREHOUSE_DAG, DOCS_DAG, "freshness_monitor", "reconcile", "lake_maintenance", TRAFFIC_DAG)
TRAFFIC_SECONDS = 7 * 24 * 3600  # shop_traffic's longest run; `make down` stops it before
ACTIVE = ("queued", "running")
POLL_S = 10


class UpError(RuntimeError):
    """`make up` could not finish; the message says what it waited for and where to look."""


def active_runs(api: AirflowApi, dag_id: str) -> list[dict]:
    """The DAG's queued and running runs, newest first."""
    return api.request("GET", f"dags/{dag_id}/dagRuns", params={"state": list(ACTIVE), "order_by": "-run_after",
                                                                "limit": 20})["dag_runs"]


def latest_run(api: AirflowApi, dag_id: str) -> dict | None:
    runs = api.request("GET", f"dags/{dag_id}/dagRuns", params={"order_by": "-run_after", "limit": 1})["dag_runs"]
    return runs[0] if runs else None


def trigger(api: AirflowApi, dag_id: str, conf: dict | None = None) -> str:
    run_id = f"make_up__{time.strftime('%Y%m%dT%H%M%S')}_{uuid.uuid4().hex[:6]}"
    api.request("POST", f"dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None,
                                                        "conf": conf or {}})
    return run_id


def set_paused(api: AirflowApi, paused: bool, dag_ids: tuple[str, ...] = DAGS) -> None:
    for dag_id in dag_ids:
        api.request("PATCH", f"dags/{dag_id}", json={"is_paused": paused})


def stop_traffic(api: AirflowApi) -> list[str]:
    """Ends every queued or running shop_traffic run (marked successful: stopped on purpose, no alert)."""
    stopped = []
    for run in active_runs(api, TRAFFIC_DAG):
        api.request("PATCH", f"dags/{TRAFFIC_DAG}/dagRuns/{run['dag_run_id']}", json={"state": "success"})
        stopped.append(run["dag_run_id"])
    return stopped


def ensure_traffic(api: AirflowApi, rate: float) -> str:
    """One shop_traffic run at `rate` operations per second; returns what it did."""
    runs = active_runs(api, TRAFFIC_DAG)
    if len(runs) == 1 and float((runs[0].get("conf") or {}).get("rate", -1)) == rate:
        return f"shop traffic already running at {rate:g} operations/s (run {runs[0]['dag_run_id']})"
    replaced = stop_traffic(api)
    run_id = trigger(api, TRAFFIC_DAG, {"rate": rate, "duration_s": TRAFFIC_SECONDS, "seed": int(time.time())})
    return f"shop traffic at {rate:g} operations/s (run {run_id}" + (
        f", replacing {', '.join(replaced)})" if replaced else ")")


def ensure_docs(api: AirflowApi, settings: Settings) -> str:
    """A data_docs run when the docs were never built (its schedule would first build them up to
    TIDEWATER_DOCS_REFRESH_MINUTES after the first publication); returns what it did."""
    from tidewater.gate import docs

    if built := docs.built_at(settings):
        return f"data docs built {built:%Y-%m-%d %H:%M} UTC; data_docs rebuilds them every " \
               f"{settings.docs_refresh_minutes:g} min"
    if runs := active_runs(api, DOCS_DAG):
        return f"data_docs run {runs[0]['dag_run_id']} is {runs[0]['state']}: the data docs come with it"
    return f"triggered data_docs (run {trigger(api, DOCS_DAG)}): the data docs come with it"


def ensure_drain(api: AirflowApi, settings: Settings) -> str:
    runs = active_runs(api, DRAIN_DAG)
    if runs:
        return f"cdc_drain run {runs[0]['dag_run_id']} is {runs[0]['state']}"
    return f"triggered cdc_drain (run {trigger(api, DRAIN_DAG)}); then every {settings.drain_interval_minutes} min"


def start(api: AirflowApi, settings: Settings, rate: float) -> list[str]:
    """Steps 2-4 of the module's docstring: every DAG unpaused, traffic at `rate`, a drain under way."""
    for dag_id in DAGS:
        api.wait_for_dag(dag_id)
    set_paused(api, False)
    return [f"unpaused {', '.join(DAGS)}", ensure_traffic(api, rate), ensure_drain(api, settings)]


@dataclass(frozen=True)
class Waited:
    publication_id: str
    seconds: float


def wait_for_publication(settings: Settings, timeout_s: float, progress: Callable[[], str] = lambda: "",
                         poll_s: float = POLL_S, failed: Callable[[], str | None] = lambda: None) -> Waited:
    """Returns once the marts catalog has a publication; UpError after `timeout_s`, or as soon as `failed` names
    a failure (a failed warehouse run)."""
    started = time.monotonic()
    while True:
        current = publish.current_publication(settings)
        if current is not None:
            return Waited(current, time.monotonic() - started)
        elapsed = time.monotonic() - started
        failure = failed()
        if failure or elapsed > timeout_s:
            logs = os.environ.get("AIRFLOW_HOME", f"{_stack_dir()}/airflow") + "/logs"
            raise UpError(
                f"{failure or f'no publication after {timeout_s:.0f} s'}: waited for the first publication of the "
                f"marts (table {publish.PUBLICATIONS}, read as connection {settings.marts_reader_conn_id!r}). "
                f"Logs: the DAG runs in the Airflow UI ({settings.airflow_url}) and under {logs}, Airflow's "
                f"processes in {_stack_dir()}/logs/airflow-*.log")
        line = progress()
        print(f"[up] waiting for the first publication ({elapsed:.0f} s){': ' + line if line else ''}", flush=True)
        time.sleep(poll_s)


def _stack_dir() -> str:
    return os.environ.get("TIDEWATER_STACK_DIR", ".stack")


def _run_states(api: AirflowApi) -> str:
    states = []
    for dag_id in (DRAIN_DAG, WAREHOUSE_DAG):
        run = latest_run(api, dag_id)
        states.append(f"{dag_id} {run['state'] if run else 'no run yet'}")
    return ", ".join(states)


def _failed_warehouse(api: AirflowApi, since: str) -> str | None:
    run = latest_run(api, WAREHOUSE_DAG)
    if run and run["state"] == "failed" and (run.get("run_after") or "") >= since:
        return f"warehouse run {run['dag_run_id']} failed (a gate failure publishes nothing: see its log)"
    return None


def where_to_look(settings: Settings, env: dict[str, str]) -> list[str]:
    """The direct address of each UI and the same through the proxy (one port, paths), with their logins."""
    proxy = f"http://127.0.0.1:{env.get('TIDEWATER_PROXY_PORT', '28000')}"
    stack = _stack_dir()
    mail = f"http://127.0.0.1:{env.get('TIDEWATER_MAIL_UI_PORT', '28025')}/mail/"
    notebooks = f"http://127.0.0.1:{env.get('TIDEWATER_JUPYTER_PORT', '28888')}/notebook/"
    rows = [
        ("Airflow UI", f"{settings.airflow_url}/", f"{proxy}/",
         f"login {env.get('TIDEWATER_AIRFLOW_ADMIN_USER', 'admin')}, password TIDEWATER_AIRFLOW_ADMIN_PASSWORD"),
        ("Data docs", f"{settings.docs_url}/", f"{proxy}/tidewater-docs/", "Airflow's login"),
        ("Status page", f"{settings.airflow_url}/tidewater-status/", f"{proxy}/tidewater-status/", "Airflow's login"),
        ("MinIO console", f"{settings.s3_console_url}/", f"{proxy}/minio/",
         "login TIDEWATER_S3_ACCESS_KEY, password TIDEWATER_S3_SECRET_KEY"),
        ("Mail", mail, f"{proxy}/mail/",
         f"login {env.get('TIDEWATER_MAIL_UI_USER', 'admin')}, password TIDEWATER_MAIL_UI_PASSWORD"),
        ("Notebooks", notebooks, f"{proxy}/notebook/", "token TIDEWATER_JUPYTER_TOKEN"),
    ]
    lines = ["", "Where to look (direct, and through the one address):"]
    lines += [f"  {name:<14} {direct:<42} {proxied:<40} {login}" for name, direct, proxied, login in rows]
    lines += [f"  passwords and tokens: {stack}/secrets (mode 0600); logs: {stack}/logs/",
              "  make down                 pause every DAG, stop the traffic, stop the stack",
              "  make up RATE=5            the same pipeline with more traffic"]
    return lines


def up(settings: Settings, rate: float, timeout_s: float) -> int:
    from tidewater_dev.demo import seed_once

    api = AirflowApi()
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    print(f"[up] {seed_once(settings)}", flush=True)
    for line in start(api, settings, rate):
        print(f"[up] {line}", flush=True)
    waited = wait_for_publication(settings, timeout_s, progress=lambda: _run_states(api),
                                  failed=lambda: _failed_warehouse(api, since))
    print(f"[up] publication {waited.publication_id} is what readers get"
          + (f" (first one after {waited.seconds:.0f} s)" if waited.seconds > 1 else " (published before)"))
    print(f"[up] {ensure_docs(api, settings)}", flush=True)
    print("\n".join(where_to_look(settings, dict(os.environ))))
    return 0


def down() -> int:
    api = AirflowApi()
    try:
        api.token()
    except requests.RequestException:
        print(f"[up] Airflow does not answer at {api.base_url}: nothing to pause", flush=True)
        return 0
    set_paused(api, True)
    stopped = stop_traffic(api)
    print(f"[up] paused {', '.join(DAGS)}; " + (f"stopped traffic run {', '.join(stopped)}" if stopped
                                                  else "no traffic was running"), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tidewater_dev.up", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="up", choices=["up", "down"])
    parser.add_argument("--rate", type=float, default=float(os.environ.get("TIDEWATER_SIMULATOR_RATE", "2")),
                        help="shop operations per second (default TIDEWATER_SIMULATOR_RATE)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the first publication")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error(f"--rate {args.rate:g}: give a rate above 0 operations per second (e.g. make up RATE=2)")
    try:
        return down() if args.command == "down" else up(Settings.from_env(), args.rate, args.timeout)
    except UpError as error:
        print(f"[up] ERROR: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
