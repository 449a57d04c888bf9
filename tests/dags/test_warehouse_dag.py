"""The warehouse DAG: every task after `lake_snapshot` (which skips on an empty lake), docs after a failed gate."""

from __future__ import annotations

from airflow.dag_processing.dagbag import DagBag

from tidewater.config import REPO_ROOT


def test_every_task_follows_lake_snapshot_and_docs_runs_unless_the_run_was_skipped():
    dag = DagBag(dag_folder=REPO_ROOT / "dags" / "warehouse.py").dags["warehouse"]

    assert [task.task_id for task in dag.roots] == ["lake_snapshot"]
    # A skipped lake_snapshot skips the whole run; a failed gate (or model) still gets its data docs.
    assert {task.task_id: task.trigger_rule for task in dag.tasks if task.trigger_rule != "all_success"} == \
        {"docs": "none_skipped"}


def test_docs_wait_for_the_publication_and_the_warehouse_goes_before_drains_for_slots():
    dagbag = DagBag(dag_folder=REPO_ROOT / "dags")
    warehouse = dagbag.dags["warehouse"]

    assert warehouse.get_task("docs").upstream_task_ids == {"publish"}
    # Airflow's "downstream" rule sums a task's own weight (1 by default) and its downstream tasks'.
    drain = dagbag.dags["cdc_drain"]
    drain_weight = max(task.priority_weight * (1 + len(task.get_flat_relative_ids(upstream=False)))
                       for task in drain.tasks)
    assert {(task.priority_weight, task.weight_rule) for task in warehouse.tasks} == {(10, "absolute")}
    assert drain_weight < 10
