"""Freshness: from a change's commit in PostgreSQL to its appearance in the published marts (docs/benchmarks.md).

With Airflow running (`make airflow-up`): unpauses `cdc_drain`, `warehouse` and `data_docs` and lets them run on
their schedules (`cdc_drain` on new CDC records, its watcher in the triggerer, and its interval; `warehouse` on the
drain's Assets; `--trigger-every S` also triggers `cdc_drain` through the REST API every S seconds, as the
benchmark did before drains were event-driven), triggers one `data_docs` run mid-window (`--docs-at-minute`), and
runs the shop simulator steadily. Every second it reads
the marts' pointer (`marts/_current.json`, written just after a publication commits: one S3 request, so the
observer takes little of the machine it measures); at each new publication it reads the window's orders from the
published marts, and the first time a publication holds an order's placement (or its payment, or its
shipping), that change's latency is the time seen minus the commit time the shop recorded (`placed_at`,
`paid_at`, `shipped_at` are set by the transaction that makes the change). After the window it waits for the
last changes to be published, prints p50 / p95 / max and the runs' durations (what dominates), and pauses
the DAGs again.

    .venv/bin/python bench/freshness_benchmark.py [--minutes 10] [--rate 2] [--trigger-every 0]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from datetime import UTC, datetime

from tidewater.config import Settings
from tidewater.gate import publish
from tidewater.lake.objects import Bucket
from tidewater_dev.airflow_api import AirflowApi
from tidewater_shop import simulator

MILESTONES = ("placed_at", "paid_at", "shipped_at")


def published_milestones(settings: Settings, since: datetime) -> set[tuple[int, str, datetime]]:
    """(order id, milestone, commit time) of every milestone committed since `since` in the current publication."""
    with publish.open_published(settings) as con:
        rows = con.execute(f"select order_id, {', '.join(MILESTONES)} from fct_orders where "
                           + " or ".join(f"{name} >= ?" for name in MILESTONES), [since] * len(MILESTONES)).fetchall()
    return {(order, name, at) for order, *times in rows for name, at in zip(MILESTONES, times, strict=True)
            if at and at >= since}


def published_id(bucket: Bucket) -> str | None:
    """The id of the newest publication (the pointer publish writes once it has committed), None before any."""
    pointer = bucket.get_json(publish.POINTER_KEY)
    return pointer["publication_id"] if pointer else None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# What the benchmark unpauses (and pauses again): the DAGs a change goes through, and the docs built beside them.
PIPELINE = ("cdc_drain", "warehouse", "data_docs")


def run_durations(airflow: AirflowApi, dag_id: str, since: datetime) -> list[float]:
    runs = airflow.request("GET", f"dags/{dag_id}/dagRuns",
                        params={"limit": 200, "start_date_gte": since.isoformat(), "state": ["success"]})["dag_runs"]
    return [(datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])).total_seconds()
            for run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=2, help="shop operations per second")
    parser.add_argument("--grace-minutes", type=float, default=8, help="wait this long for the last changes")
    parser.add_argument("--trigger-every", type=float, default=0,
                        help="also trigger cdc_drain every this many seconds (0: its schedule alone)")
    parser.add_argument("--docs-at-minute", type=float, default=5,
                        help="trigger one data_docs run this far into the window (its 30-minute interval may "
                             "not fall into it; negative: none)")
    args = parser.parse_args()
    settings = Settings.from_env()
    airflow = AirflowApi()
    started = datetime.now(UTC)
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket = Bucket(S3Hook(aws_conn_id=settings.lake_conn_id).get_conn(), settings.lake_bucket)
    seen: set[tuple[int, str, datetime]] = set()
    latencies: list[float] = []
    for dag_id in PIPELINE:
        airflow.request("PATCH", f"dags/{dag_id}", json={"is_paused": False})
    traffic = threading.Thread(target=simulator.run_traffic, daemon=True,
                               kwargs={"conninfo": settings.shop_conninfo(), "seed": int(time.time()),
                                       "rate": args.rate, "duration": args.minutes * 60})
    traffic.start()
    window_end = time.monotonic() + args.minutes * 60
    give_up = window_end + args.grace_minutes * 60
    next_trigger = time.monotonic()
    docs_at = time.monotonic() + args.docs_at_minute * 60 if args.docs_at_minute >= 0 else None
    publication = published_id(bucket)
    try:
        while time.monotonic() < give_up:
            if args.trigger_every and time.monotonic() >= next_trigger and time.monotonic() < window_end + 120:
                airflow.request("POST", "dags/cdc_drain/dagRuns", json={"logical_date": None})
                next_trigger += args.trigger_every
            if docs_at is not None and time.monotonic() >= docs_at:
                airflow.request("POST", "dags/data_docs/dagRuns", json={"logical_date": None})
                docs_at = None
            current = published_id(bucket)
            if current != publication:
                now = datetime.now(UTC)
                fresh = published_milestones(settings, started) - seen
                latencies += [(now - at).total_seconds() for _, _, at in fresh]
                seen |= fresh
                publication = current
                print(f"[{now:%H:%M:%S}] publication {current}: {len(fresh)} new milestones, "
                      f"{len(latencies)} measured", flush=True)
            if (time.monotonic() > window_end and not traffic.is_alive()
                    and publication_covers_all(settings, seen, started)):
                break
            time.sleep(1)
    finally:
        for dag_id in PIPELINE:
            airflow.request("PATCH", f"dags/{dag_id}", json={"is_paused": True})
    if not latencies:
        raise SystemExit("no change reached the published marts: is the warehouse DAG's gate passing?")
    print(f"\n{len(latencies)} changes over {args.minutes:g} min at {args.rate:g} ops/s: "
          f"p50 {percentile(latencies, 0.5):.0f} s, p95 {percentile(latencies, 0.95):.0f} s, "
          f"max {max(latencies):.0f} s")
    for name in PIPELINE:
        if durations := run_durations(airflow, name, started):
            print(f"{name} runs: {len(durations)}, median {statistics.median(durations):.0f} s, "
                  f"max {max(durations):.0f} s")


def publication_covers_all(settings: Settings, seen: set, since: datetime) -> bool:
    """Every milestone the shop committed since `since` is in the marts already."""
    import psycopg

    with psycopg.connect(settings.shop_conninfo()) as conn:
        counts = conn.execute("SELECT count(*) FILTER (WHERE placed_at >= %(t)s) + count(*) FILTER (WHERE paid_at >= "
                              "%(t)s) + count(*) FILTER (WHERE shipped_at >= %(t)s) FROM shop.orders", {"t": since})
        return counts.fetchone()[0] <= len(seen)


if __name__ == "__main__":
    main()
