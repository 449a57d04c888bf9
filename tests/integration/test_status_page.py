"""The pipeline status page (plugins/tidewater_status.py) against the real services:

- the running api-server: nothing without a login; with one, the JSON's figures are what Kafka, the lake catalog,
  PostgreSQL, Kafka Connect, the marts catalog and the gate's validation store say, read independently;
- a scratch lake holding a drained scratch topic, its app served in this process on the test instance's Airflow
  login: exact lag, newest change, rows landed today, quarantined records and freshness points, and the page in
  Debian's chromium renders the rows and the chart, with no failed request, none leaving 127.0.0.1, no console error.

The api-server loads plugins when it starts: after changing plugins/, restart it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import quote

import psycopg
import pytest
import requests
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from tests.support.alerts import free_port
from tests.support.browser import logged_in_page
from tests.support.kafka import delete_topic, produce, real_events
from tests.support.lake import drain_once, new_lake
from tidewater.cdc import connector
from tidewater.cdc.topics import consumer_config
from tidewater.config import REPO_ROOT, get_connection
from tidewater.gate import context, publish

PREFIX = "/tidewater-status"
PLUGIN = REPO_ROOT / "plugins" / "tidewater_status.py"
GARBAGE = [b"not a change event"]


def get(base_url: str, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{base_url}{PREFIX}{path}", timeout=120, allow_redirects=False, **kwargs)


def watermarks(settings, topics) -> dict[str, tuple[int, int]]:
    """topic → its low and high watermarks, each summed over its partitions."""
    consumer = Consumer(consumer_config(settings, **{"group.id": f"check-{uuid.uuid4()}"}))
    try:
        found = {}
        for topic in topics:
            marks = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                     for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions]
            found[topic] = (sum(low for low, _ in marks), sum(high for _, high in marks))
        return found
    finally:
        consumer.close()


def lake_positions(settings) -> dict[str, int]:
    """topic → the sum of its partitions' next offsets in the lake catalog (empty if no drain has committed)."""
    from tidewater.alerts.sources import open_lake_catalog

    con = open_lake_catalog(settings)
    try:
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'lake' "
                           "AND table_name = 'drain_positions'").fetchone()[0]:
            return {}
        return dict(con.execute("SELECT topic, sum(next_offset)::BIGINT FROM lake.tidewater.drain_positions "
                                "GROUP BY topic").fetchall())
    finally:
        con.close()


def test_the_status_page_and_its_endpoint_refuse_requests_without_a_valid_login(airflow_api):
    for path in ("/", "/api/status"):
        assert get(airflow_api.base_url, path).status_code == 401, path
        forged = get(airflow_api.base_url, path, cookies={"_token": "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.x"})
        assert forged.status_code in (401, 403), path
        assert "lake_bucket" not in forged.text


def test_the_endpoint_reports_the_instance_as_kafka_postgresql_connect_and_the_catalogs_see_it(airflow_api, cdc):
    settings = cdc
    topics = _drained_topics(settings)
    before, before_positions = watermarks(settings, topics), lake_positions(settings)

    response = get(airflow_api.base_url, "/api/status", headers={"Authorization": f"Bearer {airflow_api.token()}"})

    after, after_positions = watermarks(settings, topics), lake_positions(settings)
    assert response.status_code == 200, response.text
    status = response.json()
    parts = status["parts"]
    assert [name for name, part in parts.items() if "error" in part] == []
    lag = parts["lag"]["value"]
    assert sorted(lag) == topics
    for topic in topics:  # a drain or new changes may land meanwhile: the lag is between the two readings
        fewest = max(before[topic][1] - after_positions.get(topic, after[topic][0]), 0)
        most = after[topic][1] - before_positions.get(topic, before[topic][0])
        assert fewest <= lag[topic]["value"] <= most, (topic, lag[topic], fewest, most)
    assert {row["table"] for row in status["tables"]} >= {topic.rsplit(".", 1)[-1] for topic in topics}
    with psycopg.connect(settings.shop_conninfo(admin=True)) as conn:
        slots = {row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall()}
    assert {slot["key"].removeprefix("slot:") for slot in parts["slots"]["value"]} == slots
    [connector_part, *tasks] = parts["connector"]["value"]
    state = connector.status(settings)
    assert (connector_part["measured"], [task["measured"] for task in tasks]) == (
        state.connector_state, [task.state for task in state.tasks])
    published = parts["publication"]["value"]
    assert (published or {}).get("publication_id") == publish.current_publication(settings)
    runs = sorted(path.name for path in context.validations_dir(settings).glob("*/publish-*"))
    gate = parts["gate"]["value"]
    assert (gate or {}).get("publication_id") == (runs[-1].removeprefix("publish-") if runs else None)


def _drained_topics(settings) -> list[str]:
    consumer = Consumer(consumer_config(settings, **{"group.id": f"check-{uuid.uuid4()}"}))
    try:
        return sorted(t for t in consumer.list_topics(timeout=10).topics if settings.topic_pattern.match(t))
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def drained(shop_changes) -> Iterator[tuple[object, str, dict[str, str]]]:
    """A scratch lake holding one drain of a scratch topic (real change events and one record no decoder reads,
    accepted), and 3 records produced after it: (lake, topic, the environment pointing the page at both)."""
    settings = shop_changes
    topic = f"scratch{uuid.uuid4().hex[:8]}.shop.order_items"
    marts_db = f"scratch_marts_{uuid.uuid4().hex[:10]}"  # empty: nothing published (the lake's bucket is the test's)
    reader = get_connection(settings.marts_reader_conn_id)
    admin = settings.shop_conninfo(admin=True)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(marts_db)))
    with new_lake(settings) as lake:
        try:
            produce(settings, topic, [*real_events(settings, 20), *GARBAGE])
            drain_once(settings, lake, topic, f"test-status-{uuid.uuid4().hex[:8]}", accept=True)
            produce(settings, topic, real_events(settings, 3))
            yield lake, topic, {**lake.env, "TIDEWATER_DRAIN_TOPIC_REGEX": f"^{topic.replace('.', '[.]')}$",
                                "AIRFLOW_CONN_MARTS_CATALOG_READER": f"postgresql://{quote(reader.login, safe='')}:"
                                f"{quote(reader.password or '', safe='')}@{reader.host}:{reader.port}/{marts_db}"}
        finally:
            delete_topic(settings, topic)
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(marts_db)))


@pytest.fixture(scope="module")
def served(drained) -> Iterator[str]:
    """The plugin's app at its prefix, served by uvicorn in this process on a free port, on the scratch lake; the
    test instance's auth manager checks the login (this process has the instance's Airflow settings)."""
    import uvicorn
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from fastapi import FastAPI

    _, _, env = drained
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    # Airflow caches the JWT validator per auth manager class, built from the settings of its first use: a test that
    # signs tokens with a secret of its own (test_docs_plugin_access) leaves it behind; this app checks the instance's.
    BaseAuthManager._get_token_validator.cache_clear()
    create_auth_manager()
    spec = importlib.util.spec_from_file_location("tidewater_status_under_test", PLUGIN)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    root = FastAPI()
    root.mount(plugin.URL_PREFIX, plugin.app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        BaseAuthManager._get_token_validator.cache_clear()  # for tests that sign with a secret of their own
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_the_figures_of_a_drained_scratch_topic_are_what_the_lake_and_kafka_hold(drained, served, airflow_api):
    lake, topic, _ = drained
    table = topic.rsplit(".", 1)[-1]

    response = get(served, "/api/status", cookies={"_token": airflow_api.token()})

    assert response.status_code == 200, response.text
    status = response.json()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows, newest, landings = lake.con.execute(
        f"SELECT count(*) FILTER (WHERE _ingested_at >= ?), max(_source_ts), count(DISTINCT date_trunc('minute', "
        f"_ingested_at)) FROM lake.main.{table}", [today]).fetchone()
    [row] = status["tables"]
    assert (row["table"], row["topic"], row["lag"], row["rows_today"], row["quarantined"]) == (
        table, topic, 3, rows, len(GARBAGE))
    assert rows == 20 and row["quarantine_unreported_files"] == 1
    assert datetime.fromisoformat(row["newest_change"]) == newest
    assert status["parts"]["quarantine"]["value"][topic] == {"records": 1, "files": 1, "unreported_files": 1}
    series = status["parts"]["freshness"]["value"]["series"][table]
    assert landings >= 1 and len(series) >= 2  # each landing, then now
    assert series[-1][0] == status["generated_at"]
    assert series[-1][1] == pytest.approx((datetime.fromisoformat(status["generated_at"]) - newest).total_seconds()
                                          / 60)


def test_the_page_renders_the_tables_and_the_freshness_chart_from_this_machine_only(drained, served, airflow_api,
                                                                                       browser):
    _, topic, _ = drained
    login = SimpleNamespace(base_url=served, token=airflow_api.token)

    with logged_in_page(browser, login) as (page, traffic):
        page.goto(f"{served}{PREFIX}/", wait_until="networkidle")
        page.wait_for_selector("#table-rows")
        cells = page.locator("#table-rows tr td:nth-child(2)").all_text_contents()
        points = page.locator("#freshness-chart circle.point").count()
        errors = page.locator(".error").all_text_contents()
        page_text = page.locator("body").inner_text()

    assert cells == [topic]
    assert points >= 2
    assert errors == []
    assert "could not load" not in page_text and "as of " in page_text
    assert traffic.failed == [] and traffic.console_errors == []
    assert traffic.remote() == []
    assert f"{served}{PREFIX}/api/status" in traffic.urls
