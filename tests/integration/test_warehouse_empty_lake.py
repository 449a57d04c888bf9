"""`airflow dags test warehouse` on a lake no drain has landed changes in, as a new deployment's daily run finds it
(created the moment the DAG is unpaused, before the first drain): the run skips, saying why, and builds, gates,
publishes and documents nothing."""

from __future__ import annotations

import pytest

from tests.support.airflow import airflow_dags_test, metadata_session
from tidewater.lake import catalog
from tidewater.tables import registry


def _task_states(env: dict, dag_id: str) -> dict[str, str]:
    """task id → state in the newest run of `dag_id` (from the metadata a dags test with `env` wrote)."""
    from airflow.models import DagRun, TaskInstance
    from sqlalchemy import select

    with metadata_session(env) as session:
        run_id = session.scalars(select(DagRun.run_id).where(DagRun.dag_id == dag_id)
                                 .order_by(DagRun.id.desc()).limit(1)).one()
        return dict(session.execute(select(TaskInstance.task_id, TaskInstance.state).where(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all())


def test_a_warehouse_run_on_an_empty_lake_skips_saying_why(lake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    env = lake.env | {"TIDEWATER_WAREHOUSE_PATH": str(warehouse)}

    run = airflow_dags_test("warehouse", env=env)

    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]
    states = _task_states(env, "warehouse")
    assert states["dbt_build"] == "skipped" and "publish" in states
    assert set(states.values()) == {"skipped"}, {task: state for task, state in states.items() if state != "skipped"}
    assert "the lake holds no changes yet of" in output
    assert not warehouse.exists()
    assert lake.bucket.keys("marts/") == [] and lake.bucket.keys("docs/") == []


def test_a_lake_with_some_tables_landed_names_those_it_waits_for(lake, settings):
    """A first drain that ran while Debezium's snapshot had not reached every table: the run waits (skips) for them
    instead of failing their staging models."""
    tables = registry().names
    for table in tables[:-1]:
        lake.con.execute(f"CREATE TABLE lake.main.{table} (_offset BIGINT)")

    with pytest.raises(catalog.EmptyLake, match=f"no changes yet of {tables[-1]} "):
        catalog.current_snapshot(lake.settings(settings), tables)
    lake.con.execute(f"CREATE TABLE lake.main.{tables[-1]} (_offset BIGINT)")
    assert catalog.current_snapshot(lake.settings(settings), tables) > 0
