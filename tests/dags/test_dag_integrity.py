"""Every DAG imports cleanly and declares an owner, retries and tags (Astro's DAG integrity test)."""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag

from tidewater.config import REPO_ROOT


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=REPO_ROOT / "dags")


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "dags/ holds no DAG"


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
