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


def test_warehouse_builds_the_project_with_its_tests_in_one_task_of_the_one_writer_pool(dagbag):
    from tidewater.config import Settings

    warehouse = dagbag.dags["warehouse"]
    build = warehouse.get_task("dbt_build")

    assert build.base_cmd == ["build"]
    assert build.pool == Settings.from_env().warehouse_pool
    assert build.select == "{{ params.select or 'fqn:*' }}", "the whole project unless a run narrows it"
    # A fact's relationship tests run when the fact and the dimensions it joins are built.
    assert build.indirect_selection == "buildable"
    assert build.upstream_task_ids == set()
    assert warehouse.get_task("publish").upstream_task_ids == {"dbt_build"}
    assert warehouse.get_task("publish").pool == Settings.from_env().warehouse_pool, "the gate reads the warehouse"


def test_cdc_drain_runs_on_new_records_with_its_interval_as_a_fallback(dagbag):
    from datetime import timedelta

    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.sdk import AssetOrTimeSchedule

    from tidewater import assets
    from tidewater.config import Settings

    settings = Settings.from_env()
    schedule = dagbag.dags["cdc_drain"].timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.timetable.delta == timedelta(minutes=settings.drain_interval_minutes)
    asset = schedule.asset_condition
    assert asset == assets.cdc_changes(settings)
    [watcher] = asset.watchers
    trigger = watcher.trigger
    assert isinstance(trigger, MessageQueueTrigger) and trigger.scheme == "kafka"
    assert trigger.kwargs["topics"] == assets.watched_topics(settings) and len(trigger.kwargs["topics"]) == 6
    assert trigger.kwargs["kafka_config_id"] == settings.kafka_watch_conn_id
    assert trigger.kwargs["commit_offset"] is False  # it moves no offset; drains read the lake's positions


def test_the_drain_schedule_setting_is_events_or_interval():
    from tidewater import assets
    from tidewater.config import ConfigError, Settings

    assert assets.watches(Settings.from_env({"TIDEWATER_DRAIN_SCHEDULE": "events"}))
    assert not assets.watches(Settings.from_env({"TIDEWATER_DRAIN_SCHEDULE": "interval"}))
    with pytest.raises(ConfigError, match=r"TIDEWATER_DRAIN_SCHEDULE='cron': use events .* or interval"):
        assets.watches(Settings.from_env({"TIDEWATER_DRAIN_SCHEDULE": "cron"}))
