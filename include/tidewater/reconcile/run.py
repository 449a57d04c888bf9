"""The reconcile step as the DAG and the CLI run it: snapshot, wait, compare, record, mail.

Every result is recorded as JSON in the lake bucket (not in a catalog table: a result is one nested document
for people and the email links to it; nothing queries it as rows), where the status page can show it:

  _reconcile/latest.json               the latest reconciliation (every table, equal or not)
  _reconcile/history/<run id>.json     each reconciliation
  _reconcile/runs/<run id>/            the source's hashes while a reconciliation runs (removed after)

A table that differs, or could not be compared, mails once per reconciliation (alerts/messages.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tidewater.config import Settings
from tidewater.lake import Lake
from tidewater.reconcile import compare, source
from tidewater.tables import registry

LATEST_KEY = f"{source.PREFIX}/latest.json"
HISTORY_PREFIX = f"{source.PREFIX}/history/"


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def cdc_topics(settings: Settings, consumer: Any) -> list[str]:
    """The CDC topics of the reconciled tables that exist (a table never changed may have none yet)."""
    from tidewater.cdc.connector import table_topic

    existing = set(consumer.list_topics(timeout=30).topics)
    return [topic for topic in (table_topic(settings, table.name) for table in registry()) if topic in existing]


def slot_name(settings: Settings) -> str:
    from tidewater.cdc.connector import render_config

    return render_config(settings)["slot.name"]


def snapshot_state(settings: Settings, lake: Lake, consumer: Any, *, run_id: str, timeout_s: float) -> dict[str, Any]:
    """Takes the source snapshot, waits until Kafka holds it, reads the CDC topics' watermarks then: the JSON
    state the later steps (`lake_holds`, `wait_for_warehouse`, `finish`) work from."""
    snapshot = source.take_snapshot(settings, lake, run_id)
    source.wait_for_slot(settings, snapshot, slot_name(settings), timeout_s)
    marks = source.high_watermarks(consumer, cdc_topics(settings, consumer))
    return {"snapshot": snapshot.as_dict(), "watermarks": marks}


def watermarks(state: dict[str, Any]) -> dict[str, dict[int, int]]:
    # JSON (XCom) turns partition numbers into strings.
    return {topic: {int(p): int(o) for p, o in parts.items()} for topic, parts in state["watermarks"].items()}


def lake_holds(lake: Lake, state: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Whether the lake holds the CDC topics up to the state's watermarks: the state with ``lake_snapshot`` (the
    first DuckLake snapshot from which on it does) and the partitions behind (empty once it does)."""
    coverage = source.lake_coverage(lake.con, watermarks(state))
    return {**state, "lake_snapshot": coverage.snapshot}, coverage.behind


def warehouse_behind(settings: Settings, lake_conn: Any, state: dict[str, Any]) -> list[str]:
    """The staging models that have not read the lake up to the state's ``lake_snapshot`` yet."""
    from pathlib import Path

    if not Path(settings.warehouse_path).exists():
        return [f"the warehouse {settings.warehouse_path} does not exist yet (never built)"]
    con = compare.open_warehouse(settings, lake_conn)
    try:
        loaded = compare.loaded_snapshots(con, [table.staging_model for table in registry()])
    finally:
        con.close()
    return compare.models_behind(loaded, state["lake_snapshot"])


def wait_for_warehouse(settings: Settings, lake_conn: Any, state: dict[str, Any], timeout_s: float,
                       every_s: float = 15.0) -> None:
    """Polls (outside Airflow: the CLI) until every staging model has read the lake up to the state's snapshot.

    Each poll opens the warehouse read-only for a moment: a dbt build starting in that moment is refused
    the file's lock (its task retries). The DAG's sensor shares dbt's pool instead.
    """
    import duckdb

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            behind = warehouse_behind(settings, lake_conn, state)
        except duckdb.IOException as exc:  # dbt is writing it: its lock refuses readers
            behind = [f"the warehouse is locked ({exc})"]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise source.ReconcileTimeout(
                f"the warehouse {settings.warehouse_path} has not read the lake up to snapshot "
                f"{state['lake_snapshot']} (which holds the changes up to the source snapshot) within "
                f"{timeout_s:.0f} s: {'; '.join(behind[:5])}. Build it (the warehouse DAG or `make warehouse`), "
                "then reconcile again")
        time.sleep(every_s)


def finish(settings: Settings, lake: Lake, lake_conn: Any, state: dict[str, Any],
           send: Callable[[Any], None] | None) -> dict[str, Any]:
    """Compares every table, records the result in the lake, mails if a table is not equal; returns the result."""
    from tidewater.alerts import messages

    snapshot = source.SourceSnapshot.from_dict(state["snapshot"])
    con = compare.open_warehouse(settings, lake_conn)
    try:
        results = [compare.compare_table(con, snapshot, table, lake.bucket.uri(table.hashes_key),
                                         settings.reconcile_max_examples) for table in snapshot.tables]
    finally:
        con.close()
    statuses = {result.status for result in results}
    report = {
        "run_id": snapshot.run_id,
        "status": compare.ERROR if compare.ERROR in statuses else
        compare.DIFFERENT if compare.DIFFERENT in statuses else compare.EQUAL,
        "snapshot_taken_at": snapshot.taken_at,
        "lsn": snapshot.lsn,
        "lake_snapshot": state.get("lake_snapshot"),
        "finished_at": datetime.now(UTC).isoformat(),
        "warehouse": settings.warehouse_path,
        "tables": [result.as_dict() for result in results],
    }
    bucket = lake.bucket
    bucket.put_json(f"{HISTORY_PREFIX}{snapshot.run_id}.json", report)
    bucket.put_json(LATEST_KEY, report)
    if report["status"] != compare.EQUAL and send is not None:
        send(messages.reconcile_email(report, lake_uri=bucket.uri(f"{HISTORY_PREFIX}{snapshot.run_id}.json")))
    # Last: a retry after a failed send compares the same snapshot again.
    bucket.delete(bucket.keys(f"{source.PREFIX}/runs/{snapshot.run_id}/"))
    return report


def waited_too_long(settings: Settings, state: dict[str, Any], what: str, behind: list[str],
                    now: datetime | None = None) -> str | None:
    """The error for a wait past TIDEWATER_RECONCILE_TIMEOUT_MINUTES since the snapshot (None: keep waiting)."""
    taken_at = datetime.fromisoformat(state["snapshot"]["taken_at"])
    waited = ((now or datetime.now(UTC)) - taken_at).total_seconds()
    if not behind or waited <= settings.reconcile_timeout_minutes * 60:
        return None
    more = f" (and {len(behind) - 5} more)" if len(behind) > 5 else ""
    return (f"reconciliation {state['snapshot']['run_id']}: {what} within {settings.reconcile_timeout_minutes:g} "
            f"minutes of the snapshot: {'; '.join(behind[:5])}{more}")


def reconcile(settings: Settings, *, timeout_s: float | None = None, send: Callable[[Any], None] | None = None,
              lake: Lake | None = None) -> dict[str, Any]:
    """The whole step in one process (the CLI): returns the recorded result."""
    from tidewater import drain
    from tidewater.config import get_connection

    lake = lake or drain.open_lake(settings)
    timeout_s = settings.reconcile_timeout_minutes * 60 if timeout_s is None else timeout_s
    run_id = new_run_id()
    try:
        consumer = drain.kafka_consumer(settings)
        try:
            state = snapshot_state(settings, lake, consumer, run_id=run_id, timeout_s=timeout_s)
        finally:
            consumer.close()
        state["lake_snapshot"] = source.wait_for_lake(lake.con, watermarks(state), timeout_s)
        lake_conn = get_connection(settings.lake_conn_id)
        wait_for_warehouse(settings, lake_conn, state, timeout_s)
        return finish(settings, lake, lake_conn, state, send)
    finally:  # finish removes them too; a run that gave up leaves nothing behind either
        lake.bucket.delete(lake.bucket.keys(f"{source.PREFIX}/runs/{run_id}/"))
