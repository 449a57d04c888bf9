"""Every DAG imports cleanly and declares an owner, retries and tags (Astro's DAG integrity test)."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from tidewater.config import REPO_ROOT

# The folders of Airflow's DAG bundles (stack/stack.sh, Dockerfile): the product's, and the demo shop's.
DAG_FOLDERS = (REPO_ROOT / "dags", REPO_ROOT / "examples" / "shop" / "dags")


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    bag = DagBag(dag_folder=DAG_FOLDERS[0])
    for folder in DAG_FOLDERS[1:]:
        bag.collect_dags(dag_folder=folder)
    return bag


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"cdc_drain", "warehouse", "shop_traffic"} <= set(dagbag.dags)


def test_every_dag_has_tags_owner_retries_and_docs(dagbag):
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not dag.doc_md:
            problems.append(f"{dag_id}: no doc_md")
        for task in dag.tasks:
            if task.owner in (None, "", "airflow"):
                problems.append(f"{dag_id}.{task.task_id}: no owner")
            if not task.retries:
                problems.append(f"{dag_id}.{task.task_id}: no retries")
    assert problems == []


def test_warehouse_builds_each_model_with_its_tests_in_one_task_of_the_one_writer_pool(dagbag):
    import json

    from tidewater.config import Settings

    settings = Settings.from_env()
    manifest = json.loads((REPO_ROOT / "dbt" / "target" / "manifest.json").read_text())
    models = {node["name"] for node in manifest["nodes"].values()
              if node["resource_type"] == "model" and node["package_name"] in ("tidewater", "shop")}
    dbt_tasks = [task for task in dagbag.dags["warehouse"].tasks if task.task_id.startswith("dbt.")]

    assert {task.task_id.removeprefix("dbt.").removesuffix("_model_build") for task in dbt_tasks} == models
    assert {task.pool for task in dbt_tasks} == {settings.warehouse_pool}
    # A fact's relationship tests run in its own task (no task of their own), after the dimensions it joins.
    assert {task.indirect_selection for task in dbt_tasks} == {"buildable"}
    fact = dagbag.dags["warehouse"].get_task("dbt.fct_order_items_model_build")
    assert {"dbt.dim_customer_model_build", "dbt.dim_product_model_build"} <= fact.upstream_task_ids
