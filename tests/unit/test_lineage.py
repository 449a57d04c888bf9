"""OpenLineage settings and dataset names (tidewater.lineage)."""

from __future__ import annotations

import json

import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState

from tidewater import lineage
from tidewater.config import ConfigError


def transport(env: dict[str, str]) -> dict:
    return json.loads(lineage.airflow_settings(env)["AIRFLOW__OPENLINEAGE__TRANSPORT"])


def test_events_go_to_the_file_by_default_behind_the_lake_names():
    settings = lineage.airflow_settings({"TIDEWATER_OPENLINEAGE_FILE": "/srv/lineage/events.jsonl"})
    assert settings["AIRFLOW__OPENLINEAGE__NAMESPACE"] == "tidewater"
    assert json.loads(settings["AIRFLOW__OPENLINEAGE__TRANSPORT"]) == {
        "type": "transform", "transformer_class": "tidewater.lineage.LakeNames",
        "transport": {"type": "file", "log_file_path": "/srv/lineage/events.jsonl", "append": True}}


def test_a_url_sends_the_events_there_with_its_api_key():
    env = {"TIDEWATER_OPENLINEAGE_FILE": "/srv/events.jsonl", "TIDEWATER_OPENLINEAGE_URL": "http://marquez:5000/",
           "TIDEWATER_OPENLINEAGE_API_KEY": "k", "TIDEWATER_OPENLINEAGE_NAMESPACE": "prod"}
    assert transport(env)["transport"] == {"type": "http", "url": "http://marquez:5000", "endpoint": "api/v1/lineage",
                                           "auth": {"type": "api_key", "apiKey": "k"}}
    assert lineage.airflow_settings(env)["AIRFLOW__OPENLINEAGE__NAMESPACE"] == "prod"


@pytest.mark.parametrize(("env", "named"), [
    ({"TIDEWATER_OPENLINEAGE_URL": "marquez:5000"}, "TIDEWATER_OPENLINEAGE_URL='marquez:5000' is not an http(s) URL"),
    ({}, "set TIDEWATER_OPENLINEAGE_FILE"),
])
def test_settings_without_a_usable_destination_are_refused(env, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        lineage.airflow_settings(env)


@pytest.mark.parametrize(("servers", "uri"), [
    ("127.0.0.1:29092", "kafka://127.0.0.1:29092/shop.shop.orders"),
    ("kafka:9092, kafka2:9092", "kafka://kafka:9092/shop.shop.orders"),
    ("SASL_SSL://broker:9093", "kafka://broker:9093/shop.shop.orders"),
])
def test_a_topic_is_named_by_its_first_bootstrap_server(servers, uri):
    assert lineage.kafka_topic_uri(servers, "shop.shop.orders") == uri


def test_a_bootstrap_list_without_a_server_is_refused():
    with pytest.raises(ConfigError, match="names no server"):
        lineage.kafka_topic_uri(" ", "t")


@pytest.mark.parametrize(("name", "table"), [
    ("lake.main.orders", "orders"), ("warehouse.main.orders", None), ("lake.tidewater.drain_positions", None),
    ("lake.main.", None), ("lake.main.a.b", None), ("lakehouse.main.orders", None),
])
def test_only_dbt_names_of_the_lake_change_tables_are_lake_tables(name, table):
    assert lineage.lake_table_of(name) == table


def test_lake_names_renames_dbt_sources_in_the_lake_and_nothing_else(monkeypatch):
    monkeypatch.setenv("TIDEWATER_LAKE_BUCKET", "my-lake")
    warehouse = "duckdb:///data/warehouse.duckdb"
    event = RunEvent(eventType=RunState.COMPLETE, eventTime="2026-12-04T00:00:00Z",
                     run=Run(runId="01932e2c-0000-7000-8000-000000000000"), job=Job(namespace="tidewater", name="j"),
                     inputs=[InputDataset(warehouse, "lake.main.orders"), InputDataset(warehouse, "warehouse.main.x"),
                             InputDataset("postgres://db:5432", "lake.main.orders")],
                     outputs=[OutputDataset(warehouse, "warehouse.main.stg")])

    renamed = lineage.LakeNames({}).transform(event)

    assert [(d.namespace, d.name) for d in renamed.inputs] == [
        ("s3://my-lake", "lake/main/orders"), (warehouse, "warehouse.main.x"),
        ("postgres://db:5432", "lake.main.orders")]
    assert [(d.namespace, d.name) for d in renamed.outputs] == [(warehouse, "warehouse.main.stg")]
