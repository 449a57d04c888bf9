"""
### lake_maintenance: compaction of small files and retention by age, on the lake and the marts catalogs

Daily by default (`TIDEWATER_LAKE_MAINTENANCE_SCHEDULE`, an Airflow schedule such as `@daily` or a cron line).

**The lake** (`maintain_lake`, `include/tidewater/lake/maintenance.py`):
1. per change table, writes rows and deletions DuckLake inlined in the catalog to Parquet and merges the small
   Parquet files of many drains into larger ones (`ducklake_flush_inlined_data`, `ducklake_merge_adjacent_files`),
   holding the catalog's rewrite lock (a replay's deletions overlapping a compaction would be lost). No row, row
   id or snapshot id changes and the change feed (`ducklake_table_changes`) stays the same, so the warehouse
   loads nothing twice;
2. expires snapshots older than `TIDEWATER_LAKE_KEEP_HOURS` (168: 7 days; the one current at that time stays).
   The warehouse reads every snapshot it has not loaded yet: it must build at least that often, or its next
   build fails asking for a full refresh. Time travel reaches back as far;
3. deletes the files compaction and expiry made unneeded, and orphaned files (a drain killed before its
   commit), once `TIDEWATER_LAKE_FILE_MIN_AGE_HOURS` (1) old: a drain in flight never loses its uploaded,
   not yet committed files.

**The marts** (`retain_marts`): the publication's own retention (`python -m tidewater.gate.publish retain`,
`TIDEWATER_MARTS_KEEP_HOURS`), which a publish runs too once a snapshot is overdue by a tenth of the keep time;
here it runs whatever, also when nothing was published.

Each task returns what it did (files before/after, expired snapshot ids, deleted files). A failed task mails
its error; a step that conflicts with a drain's commit is retried, and the next run catches up on anything left.
Figures and verified facts: docs/lake-maintenance.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag, task

from tidewater.alerts.notify import on_task_failure
from tidewater.config import Settings

settings = Settings.from_env()


@dag(
    schedule=settings.lake_maintenance_schedule,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tidewater", "lake", "maintenance"],
    default_args={"owner": "tidewater", "retries": 2, "retry_delay": timedelta(minutes=5),
                  "on_failure_callback": on_task_failure},
)
def lake_maintenance():
    @task
    def maintain_lake() -> dict:
        from functools import partial

        from tidewater.config import get_connection
        from tidewater.lake import catalog, maintenance

        con = catalog.connect(settings, catalog.LAKE)
        lock = partial(maintenance.rewrite_lock, get_connection(settings.lake_catalog_conn_id))
        try:
            return maintenance.run(con, maintenance.Policy.from_settings(settings), catalog.LAKE, lock=lock).as_dict()
        finally:
            con.close()

    @task
    def retain_marts() -> dict:
        from dataclasses import asdict

        from tidewater.gate import publish

        marts = publish.open_marts(settings)
        try:
            return asdict(publish.retain(settings, marts.con))
        finally:
            marts.con.close()

    maintain_lake()
    retain_marts()


lake_maintenance()
