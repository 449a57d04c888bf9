"""
### warehouse: the DuckDB star schema, rebuilt from the CDC lake by dbt (rendered by Cosmos)

Runs after every `cdc_drain` run that landed new rows (scheduled on the `s3://<bucket>/raw` asset, one
event per drain run, so not once per table), and on demand. Cosmos renders the dbt project in `dbt/`
from its manifest (`dbt parse`, run by `make install`): staging (each change once), intermediate
(versions and current state per entity, built from the change log), marts (SCD2 dimensions, facts,
data marts), with each model's tests right after it.

**One writer.** A DuckDB file has one writer process, and other processes, readers too, are refused
its lock. Every dbt task therefore takes the one slot of the `duckdb_warehouse` pool, so they run one
after another even with parallel workers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import dag
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, LoadMode, TestBehavior

from tidewater import assets
from tidewater.config import Settings

settings = Settings.from_env()
dbt_project = Path(settings.dbt_project_dir)


@dag(
    schedule=[assets.raw_lake(settings)],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tidewater", "warehouse", "dbt"],
    default_args={"owner": "tidewater", "retries": 1, "retry_delay": timedelta(seconds=30)},
)
def warehouse():
    DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(dbt_project_path=dbt_project,
                                     manifest_path=dbt_project / "target" / "manifest.json"),
        profile_config=ProfileConfig(profile_name="tidewater", target_name="local",
                                     profiles_yml_filepath=dbt_project / "profiles.yml"),
        # Relationship tests (fact → dimension) run in their own tasks, once every parent model is built.
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.AFTER_EACH,
                                   should_detach_multiple_parents_tests=True),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL),
        operator_args={"pool": settings.warehouse_pool, "install_deps": False},
    )


warehouse()
