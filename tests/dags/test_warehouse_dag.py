"""The warehouse DAG (every task after `dbt_build`, which skips on an empty lake; a run ends with its
publication) and the data_docs DAG (only its copy of the warehouse holds the warehouse pool)."""

from __future__ import annotations

from datetime import timedelta

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DeltaTriggerTimetable

from tidewater import assets
from tidewater.config import REPO_ROOT, Settings


def test_every_task_follows_dbt_build_and_the_run_ends_with_its_publication():
    dag = DagBag(dag_folder=REPO_ROOT / "dags" / "warehouse.py").dags["warehouse"]

    assert [task.task_id for task in dag.roots] == ["dbt_build"]
    assert [task.task_id for task in dag.leaves] == ["publish"]
    # dbt_build takes the lake snapshot of the newest drain run (an inlet) before dbt starts, and skips on an empty lake
    assert [inlet.uri for inlet in dag.get_task("dbt_build").inlets] == [assets.raw_lake(Settings.from_env()).uri]
    assert dag.get_task("dbt_build")._pre_execute_hook is not None
    # A skipped dbt_build skips the whole run; nothing runs after a failure.
    assert {task.task_id: task.trigger_rule for task in dag.tasks if task.trigger_rule != "all_success"} == {}


def test_the_warehouse_goes_before_drains_for_slots():
    dagbag = DagBag(dag_folder=REPO_ROOT / "dags")
    warehouse = dagbag.dags["warehouse"]
    # Airflow's "downstream" rule sums a task's own weight (1 by default) and its downstream tasks'.
    drain = dagbag.dags["cdc_drain"]
    drain_weight = max(task.priority_weight * (1 + len(task.get_flat_relative_ids(upstream=False)))
                       for task in drain.tasks)
    assert {(task.priority_weight, task.weight_rule) for task in warehouse.tasks} == {(10, "absolute")}
    assert drain_weight < 10


def test_data_docs_holds_the_warehouse_pool_only_to_copy_it_and_runs_on_its_refresh_interval():
    settings = Settings.from_env()
    dag = DagBag(dag_folder=REPO_ROOT / "dags" / "data_docs.py").dags["data_docs"]

    assert [(task.task_id, task.pool) for task in dag.topological_sort()] == \
        [("copy_warehouse", settings.warehouse_pool), ("build_docs", "default_pool")]
    assert dag.timetable == DeltaTriggerTimetable(timedelta(minutes=settings.docs_refresh_minutes))
    assert [outlet.uri for outlet in dag.get_task("build_docs").outlets] == [f"s3://{settings.lake_bucket}/docs"]
