"""
### freshness_monitor: data freshness, the CDC connector and the replication slots, checked every few minutes

Every `TIDEWATER_FRESHNESS_INTERVAL_MINUTES` (default 5) this DAG measures

- the age of the published marts (`marts/_current.json` in the lake: `published_at`),
  limit `TIDEWATER_FRESHNESS_MAX_MART_AGE_MINUTES`;
- per change table of the lake (`lake.main.<table>`, attached read-only), the age of its newest landed change
  (the newest `_source_ts` that is not in the future: changes dated more than 5 minutes ahead of now are ignored
  and counted in the alert's text), limit `TIDEWATER_FRESHNESS_MAX_CHANGE_AGE_MINUTES`;
- per drained topic, its lag: Kafka's high watermark minus the lake's position (`lake.tidewater.drain_positions`,
  the drain's only record of progress; a partition the lake never drained counts from the low watermark),
  limit `TIDEWATER_FRESHNESS_MAX_TOPIC_LAG` records;
- the Debezium connector `TIDEWATER_CDC_CONNECTOR` and each of its tasks, through Kafka Connect's REST API
  (`GET /connectors/<name>/status`): a connector not RUNNING (also: Connect not answering, the connector not
  registered) or a task FAILED is a breach; the email quotes the trace and says how to restart it;
- per replication slot of the shop's server, the WAL it holds back
  (`pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)`), limit `TIDEWATER_MAX_SLOT_LAG_BYTES`; a slot
  PostgreSQL invalidated (`wal_status` 'lost', past `max_slot_wal_keep_size`) is a breach saying it must be
  recreated and the tables snapshotted again.

A breach sends **one** email; later checks that find it still there send nothing; the check that finds it
over sends one "recovered" email. Which breaches are open is kept in the lake bucket (`_alerts/freshness_state.json`),
so restarts do not re-send. If one of these groups cannot be measured, the others are still checked and mailed,
then the task fails (its failure email says what could not be measured).
Logic: `include/tidewater/alerts/freshness.py`; sources: `alerts/sources.py`; what is sent when: docs/alerts.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

from tidewater.alerts.notify import on_task_failure
from tidewater.config import ConfigError, Settings

settings = Settings.from_env()


@dag(
    schedule=timedelta(minutes=settings.freshness_interval_minutes),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two checks at once could both mail the same breach
    doc_md=__doc__,
    tags=["tidewater", "alerts", "sla"],
    default_args={"owner": "tidewater", "retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": on_task_failure},
)
def freshness_monitor():
    @task
    def check_freshness() -> list[dict]:
        from tidewater.alerts import sources

        try:
            transitions = sources.check_freshness(settings, datetime.now(UTC))
        except ConfigError as exc:
            raise AirflowFailException(str(exc)) from exc  # a retry would fail the same way
        return [{"kind": t.kind, "key": t.measurement.key, "measured": t.measurement.measured(), "since": t.since}
                for t in transitions]

    check_freshness()


freshness_monitor()
