"""OpenLineage on the real stack: a drain's events name the topics it read and the lake tables it wrote, a dbt
model's events its sources (the drain's tables) and the model, all in the file the settings name."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import psycopg

from tests.support.airflow import airflow_dags_test, with_own_metadata
from tests.support.lake import now_ms, read_events
from tidewater import lineage
from tidewater.cdc.connector import table_topic
from tidewater.cdc.topics import consumer_config
from tidewater.config import REPO_ROOT

MODEL = "stg_shop__customers"


def completed(events_file: Path, job: str) -> list[dict]:
    """The COMPLETE events of the OpenLineage job `job` (dag_id.task_id) in the file."""
    lines = events_file.read_text().splitlines() if events_file.exists() else []
    return [event for event in map(json.loads, lines)
            if event.get("eventType") == "COMPLETE" and event["job"]["name"] == job]


def datasets(event: dict, side: str) -> set[tuple[str, str]]:
    return {(dataset["namespace"], dataset["name"]) for dataset in event.get(side, [])}


def test_drain_and_model_events_carry_their_inputs_and_outputs(cdc, lake, tmp_path):
    events_file = tmp_path / "lineage" / "events.jsonl"
    events_file.parent.mkdir()
    topic = table_topic(cdc, "customers")
    # One topic: `airflow dags test` runs every task in one process, where Airflow's hook lineage collector keeps
    # what earlier tasks reported (a deployment runs each task in a process of its own; docs/lineage.md).
    env = lake.env | lineage.airflow_settings({"TIDEWATER_OPENLINEAGE_FILE": str(events_file)}) | {
        "TIDEWATER_WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
        "TIDEWATER_DRAIN_TOPIC_REGEX": re.escape(topic)}
    since = now_ms()
    email = f"lineage-{uuid.uuid4().hex[:8]}@example.com"
    with psycopg.connect(cdc.shop_conninfo(), autocommit=True) as conn:
        customer_id = conn.execute(
            "INSERT INTO shop.customers (email, full_name) VALUES (%s, 'Lin Eage') RETURNING customer_id",
            (email,)).fetchone()[0]
    assert read_events(cdc, topic, since, "customer_id", customer_id, count=1)

    drain = airflow_dags_test("cdc_drain", env=env)

    assert drain.returncode == 0, drain.stdout[-3000:] + drain.stderr[-3000:]
    drains = completed(events_file, "cdc_drain.drain_partitions")
    kafka = "kafka://" + consumer_config(cdc)["bootstrap.servers"].split(",")[0]
    bucket = f"s3://{lake.bucket.bucket}"
    assert len(drains) == 1, drain.stdout[-3000:] + drain.stderr[-3000:]
    assert datasets(drains[0], "inputs") == {(kafka, topic)}
    assert datasets(drains[0], "outputs") == {(bucket, "lake/main/customers")}

    model = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "airflow"), "tasks", "test", "warehouse", "dbt_build",
                            "--task-params", json.dumps({"select": MODEL})], capture_output=True, text=True,
                           timeout=600, env=os.environ | with_own_metadata(env))

    events = completed(events_file, "warehouse.dbt_build")
    assert len(events) == 1, model.stdout[-3000:] + model.stderr[-3000:]
    built = (f"duckdb://{tmp_path / 'warehouse.duckdb'}", f"warehouse.main.{MODEL}")
    assert datasets(events[0], "outputs") == {built}
    # `dbt build` runs the model's tests too, which read the model: it is an input as well.
    assert datasets(events[0], "inputs") - {built} == {(bucket, "lake/main/customers")}, \
        "the model's source, named as the drain names its table"
