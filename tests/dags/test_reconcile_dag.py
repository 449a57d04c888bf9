"""The reconcile DAG: its steps in order, the warehouse read only inside the one-writer pool."""

from __future__ import annotations

from airflow.dag_processing.dagbag import DagBag

from tidewater.config import REPO_ROOT, Settings


def test_reconcile_reads_the_warehouse_only_in_its_pool_after_the_lake_holds_the_snapshot():
    dag = DagBag(dag_folder=REPO_ROOT / "dags" / "reconcile.py").dags["reconcile"]
    pool = Settings.from_env().warehouse_pool

    assert [task.task_id for task in dag.topological_sort()] == [
        "snapshot_source", "lake_holds_snapshot", "warehouse_holds_snapshot", "compare"]
    assert {task.task_id for task in dag.tasks if task.pool == pool} == {"warehouse_holds_snapshot", "compare"}
    # Sensors give their slot (and the pool's) back between pokes: dbt can build meanwhile.
    assert {dag.get_task(t).mode for t in ("lake_holds_snapshot", "warehouse_holds_snapshot")} == {"reschedule"}
