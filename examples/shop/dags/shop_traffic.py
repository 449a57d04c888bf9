"""
### shop_traffic: drive the demo web shop from the Airflow UI

Runs the simulator (sign-ups, address and price changes,
orders placed → paid → shipped, cancellations, customer deletions) at `rate` operations per second for
`duration_s` seconds (`make up` starts a run of a week, `make down` stops it). Every change flows through
Debezium into Kafka, where `cdc_drain` picks it up.
The same `seed` on the same starting data makes the same operations. It runs as the shop's application
role: the migrations (roles, schema) are applied by `make shop-migrate` or compose's `shop-migrate` job,
never by Airflow, which holds no PostgreSQL superuser.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from tidewater.alerts.notify import on_task_failure


@dag(
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["tidewater", "shop", "demo"],
    default_args={"owner": "tidewater", "retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": on_task_failure},
    params={
        "rate": Param(5.0, type="number", minimum=0.1, description="operations per second"),
        "duration_s": Param(60, type="integer", minimum=1, maximum=7 * 24 * 3600, description="how long to run"),
        "seed": Param(42, type="integer", description="random seed: same seed, same operations"),
    },
)
def shop_traffic():
    @task
    def run_traffic(params: dict | None = None) -> dict[str, int]:
        import sys

        from tidewater.config import Settings
        from tidewater_shop import simulator

        counts = simulator.run_traffic(
            Settings.from_env().shop_conninfo(), seed=params["seed"], rate=params["rate"],
            duration=params["duration_s"], progress=sys.stdout,
        )
        return counts.as_dict()

    run_traffic()


shop_traffic()
