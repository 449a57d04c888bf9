"""
### data_docs: the GX data docs and the dbt docs, rebuilt beside the pipeline, never in its way

Every `TIDEWATER_DOCS_REFRESH_MINUTES` (30) and on demand (Trigger in the UI, `airflow dags test data_docs`):

- `copy_warehouse` copies the warehouse file (`TIDEWATER_WAREHOUSE_PATH`) to `docs-copy/` beside it, holding the
  `duckdb_warehouse` pool's one slot for the copy alone (a DuckDB file has one writer; the slot keeps dbt, the gate
  and this copy one after another). A scheduled run skips when no gate ran since the docs were last built; a
  manual run always rebuilds.
- `build_docs` renders the GX pages of the gate runs not rendered yet (a failed gate renders its own at once: its
  alert links to them), runs `dbt docs generate` against the copy (the catalog: every model's columns and types),
  and copies both sites to `s3://<bucket>/docs/`. It holds nothing the warehouse DAG needs, so a warehouse run
  starts and publishes while the docs are built, and it runs at the lowest CPU and I/O priority (Linux's
  SCHED_IDLE and idle I/O class; nice 19 elsewhere), so drains and warehouse runs get the cores first.

The Airflow UI shows them under Browse → Data docs (docs/gate.md). Logic: `include/tidewater/gate/docs.py`,
`gate/steps.py` (`docs_stale`, `build_docs`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from tidewater import assets
from tidewater.alerts.notify import on_task_failure
from tidewater.config import Settings

log = logging.getLogger(__name__)
settings = Settings.from_env()


@dag(
    schedule=timedelta(minutes=settings.docs_refresh_minutes),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tidewater", "docs", "dbt", "gx"],
    default_args={"owner": "tidewater", "retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": on_task_failure},
)
def data_docs():
    @task(pool=settings.warehouse_pool, inlets=[assets.published_marts(settings)])
    def copy_warehouse(**context) -> str:
        from tidewater.gate import docs, steps

        if context["dag_run"].run_type == "scheduled" and not steps.docs_stale(settings):
            raise AirflowSkipException("no gate ran since the data docs were built; trigger this DAG to rebuild them")
        return str(docs.copy_warehouse(settings))

    @task(outlets=[assets.data_docs(settings)])
    def build_docs(warehouse_copy: str) -> int:
        from tidewater.gate import docs, steps

        # This task's process only: drains and warehouse runs get the CPU and the disk first (2 cores, docs/gate.md).
        log.info("building the docs at the lowest priority (%s)", docs.yield_the_cpu())
        return steps.build_docs(settings, warehouse_copy)

    build_docs(copy_warehouse())


data_docs()
