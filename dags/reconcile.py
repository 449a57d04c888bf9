"""
### reconcile: the warehouse compared with PostgreSQL, table by table, as of one source snapshot

Every `TIDEWATER_RECONCILE_INTERVAL_MINUTES` (default 60), and on demand:

1. `snapshot_source` reads every shop table in one REPEATABLE READ transaction: its LSN
   (`pg_current_wal_lsn()`), and per row a hash of its key and values (streamed into the lake); then waits
   until Debezium's slot has confirmed that LSN and reads the CDC topics' high watermarks;
2. `lake_holds_snapshot` waits (a sensor, rescheduled) until the lake's positions (`tidewater.drain_positions`)
   reach them, and finds the first DuckLake snapshot from which on they do;
3. `warehouse_holds_snapshot` waits (in the `duckdb_warehouse` pool, between pokes it holds nothing) until
   every staging model has read the lake up to that snapshot (`lake_loads`; the warehouse DAG builds after
   the drain);
4. `compare` (in the pool; the warehouse read-only) compares each table's rows, counts and checksum with
   the warehouse's state as of the snapshot, records the result in the lake (`_reconcile/latest.json`,
   `_reconcile/history/`) and mails the tables that differ with example keys. It then fails.

Waiting longer than `TIDEWATER_RECONCILE_TIMEOUT_MINUTES` (30) fails the waiting task (a failure email).
Logic: `include/tidewater/reconcile/`; the CLI: `tidewater cdc reconcile`; docs/reconcile.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import PokeReturnValue, dag, task
from airflow.sdk.exceptions import AirflowFailException

from tidewater.alerts.notify import on_task_failure
from tidewater.config import Settings

settings = Settings.from_env()
log = logging.getLogger(__name__)
# The sensors fail with what is behind once TIDEWATER_RECONCILE_TIMEOUT_MINUTES have passed since the snapshot;
# Airflow's own sensor timeout (later) is only a backstop.
WAIT = {"mode": "reschedule", "poke_interval": 30, "timeout": (settings.reconcile_timeout_minutes + 10) * 60}


class SourceDiffers(AirflowFailException):
    """The reconciliation found tables not equal; it has mailed them already."""


def _on_failure(context: dict) -> None:
    if not isinstance(context.get("exception"), SourceDiffers):  # differences are mailed by compare itself
        on_task_failure(context)


@dag(
    schedule=timedelta(minutes=settings.reconcile_interval_minutes),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tidewater", "reconcile", "quality"],
    default_args={"owner": "tidewater", "retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": _on_failure},
)
def reconcile():
    @task
    def snapshot_source() -> dict:
        from tidewater import drain
        from tidewater.reconcile import run

        consumer, lake = drain.kafka_consumer(settings), drain.open_lake(settings)
        try:
            return run.snapshot_state(settings, lake, consumer, run_id=run.new_run_id(),
                                      timeout_s=settings.reconcile_timeout_minutes * 60)
        finally:
            consumer.close()
            lake.con.close()

    @task.sensor(**WAIT)
    def lake_holds_snapshot(state: dict) -> PokeReturnValue:
        from tidewater import drain
        from tidewater.reconcile import run

        lake = drain.open_lake(settings)
        try:
            state, behind = run.lake_holds(lake, state)
        finally:
            lake.con.close()
        if error := run.waited_too_long(settings, state, "the lake's positions did not reach the CDC topics' "
                                        "watermarks", behind):
            raise AirflowFailException(error + " (is cdc_drain running?)")
        if behind:
            log.info("cdc_drain has not committed up to the snapshot yet: %s", "; ".join(behind))
        else:
            log.info("the lake holds the snapshot from lake snapshot %s on", state["lake_snapshot"])
        return PokeReturnValue(is_done=not behind, xcom_value=state)

    @task.sensor(pool=settings.warehouse_pool, **WAIT)
    def warehouse_holds_snapshot(state: dict) -> PokeReturnValue:
        from tidewater.config import get_connection
        from tidewater.reconcile import run

        behind = run.warehouse_behind(settings, get_connection(settings.lake_conn_id), state)
        if error := run.waited_too_long(settings, state, f"the warehouse did not read the lake up to snapshot "
                                        f"{state['lake_snapshot']}", behind):
            raise AirflowFailException(error + " (did the warehouse DAG run and succeed?)")
        if behind:
            log.info("the warehouse has not read the lake up to snapshot %s: %s", state["lake_snapshot"],
                     "; ".join(behind))
        return PokeReturnValue(is_done=not behind, xcom_value=state)

    @task(pool=settings.warehouse_pool)
    def compare(state: dict) -> dict:
        from tidewater import drain
        from tidewater.alerts import notify
        from tidewater.config import get_connection
        from tidewater.reconcile import run

        lake = drain.open_lake(settings)
        try:
            report = run.finish(settings, lake, get_connection(settings.lake_conn_id), state,
                                send=lambda email: notify.send(settings, email))
        finally:
            lake.con.close()
        if report["status"] != "equal":
            bad = [t["table"] for t in report["tables"] if t["status"] != "equal"]
            raise SourceDiffers(f"reconciliation {report['run_id']}: {', '.join(bad)} not equal to PostgreSQL "
                                f"(mailed; recorded in s3://{settings.lake_bucket}/{run.LATEST_KEY})")
        return {t["table"]: t["source_rows"] for t in report["tables"]}

    compare(warehouse_holds_snapshot(lake_holds_snapshot(snapshot_source())))


reconcile()
