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
