"""Reconciliation with the source on the real stack: the lake snapshot that holds a source snapshot, a clean
pipeline reconciling equal, and a change deleted from the lake behind the pipeline's back reported (mailed and
recorded) with its table and key.

Each reconciliation runs the steps of the reconcile DAG in order on a scratch lake: the source snapshot,
Debezium's slot past its LSN, a drain (with a test consumer group) past the watermarks read after it, the lake
snapshot whose positions reach them, a dbt build of a scratch warehouse, every staging model having read the lake
up to that snapshot (lake_loads), the comparison."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import duckdb
import psycopg
import pytest

from tests.support.airflow import through_xcom
from tests.support.dbt import dbt
from tests.support.lake import drain_once, new_lake
from tidewater.alerts import notify
from tidewater.cdc.connector import table_topic
from tidewater.config import get_connection
from tidewater.drain.drainer import Replay
from tidewater.reconcile import canonical, compare, run, source
from tidewater.reconcile.source import LakeCoverage
from tidewater.tables import registry
from tidewater_dev.mailsink import read_messages

TIMEOUT_S = 180
STAGING = [table.staging_model for table in registry()]


def test_the_lake_holds_the_watermarks_from_the_first_snapshot_whose_positions_reach_them(shop_changes, lake,
                                                                                         group_id):
    topic = table_topic(shop_changes, "orders")
    runs = [drain_once(shop_changes, lake, topic, group_id, max_records_per_run=100) for _ in range(3)]
    first, second, third = (r.partitions[0].end for r in runs)
    inside_second = {topic: {0: first + 1}}

    assert first < second < third and len({r.snapshot_id for r in runs}) == 3
    assert source.lake_coverage(lake.con, inside_second) == LakeCoverage(runs[1].snapshot_id, [])
    assert source.lake_coverage(lake.con, {topic: {0: first}}) == LakeCoverage(runs[0].snapshot_id, [])
    assert source.lake_coverage(lake.con, {topic: {0: third + 5}}) == LakeCoverage(
        None, [f"{topic}[0] at {third} < {third + 5}"])
    assert source.lake_coverage(lake.con, {"shop.shop.nowhere": {0: 3}, topic: {0: 0}}) == LakeCoverage(
        None, ["shop.shop.nowhere[0] never drained < 3"])

    # A replay moves the position back below the watermark: the lake no longer holds it ...
    replayed = drain_once(shop_changes, lake, topic, group_id, replay=Replay(offsets={0: first - 10}),
                          max_records_per_run=5)
    assert replayed.partitions[0].end == first - 5
    assert source.lake_coverage(lake.con, inside_second) == LakeCoverage(None, [f"{topic}[0] at {first - 5} < "
                                                                                f"{first + 1}"])
    # ... until a drain brings it past the watermark again, from that drain's snapshot on.
    again = drain_once(shop_changes, lake, topic, group_id)
    assert source.lake_coverage(lake.con, inside_second) == LakeCoverage(again.snapshot_id, [])
    assert source.wait_for_lake(lake.con, inside_second, timeout_s=5) == again.snapshot_id


@pytest.fixture(scope="module")
def pipeline(shop_changes, tmp_path_factory):
    """A scratch lake, settings pointing at it and at a scratch warehouse file, and the drain's consumer group."""
    workdir = tmp_path_factory.mktemp("reconcile")
    with new_lake(shop_changes) as lake:
        settings = replace(lake.settings(shop_changes), warehouse_path=str(workdir / "warehouse.duckdb"))
        yield settings, lake, f"test-reconcile-{uuid.uuid4().hex[:8]}"


def _loads(settings) -> dict[str, int | None]:
    with duckdb.connect(":memory:") as con:
        con.execute(f"attach '{settings.warehouse_path}' as {compare.WAREHOUSE} (read_only)")
        return compare.loaded_snapshots(con, STAGING)


def _reconcile(settings, lake, group: str, *build_args: str) -> dict:
    from tidewater import drain

    consumer = drain.kafka_consumer(settings, group_id=group)
    try:
        state = run.snapshot_state(settings, lake, consumer, run_id=run.new_run_id(), timeout_s=TIMEOUT_S)
    finally:
        consumer.close()
    for topic in state["watermarks"]:  # the drain, as cdc_drain would run it after the snapshot
        drain_once(settings, lake, topic, group)
    state["lake_snapshot"] = source.wait_for_lake(lake.con, run.watermarks(state), timeout_s=30)
    built = dbt("build", "--select", "staging", "intermediate", *build_args, lake=lake,
                warehouse=settings.warehouse_path)
    assert built.returncode == 0, built.stdout[-4000:]
    lake_conn = get_connection(settings.lake_conn_id)
    run.wait_for_warehouse(settings, lake_conn, state, timeout_s=30)
    return run.finish(settings, lake, lake_conn, state, send=lambda email: notify.send(settings, email))


def _mails_about(settings, run_id: str) -> list:
    return [m for m in read_messages(Path(settings.mail_dir)) if run_id in m.get_body(("html",)).get_content()]


def test_a_clean_pipeline_reconciles_equal(pipeline):
    settings, lake, group = pipeline

    report = _reconcile(settings, lake, group)

    assert {t["table"]: t["status"] for t in report["tables"]} == dict.fromkeys(
        ("customers", "addresses", "products", "orders", "order_items", "payments"), "equal"), report
    for table in report["tables"]:
        assert table["source_rows"] == table["warehouse_rows"] > 0
        assert table["source_checksum"] == table["warehouse_checksum"]
    assert min(_loads(settings).values()) >= report["lake_snapshot"] > 0
    assert lake.bucket.get_json(run.LATEST_KEY) == report
    assert lake.bucket.get_json(f"{run.HISTORY_PREFIX}{report['run_id']}.json") == report
    assert lake.bucket.keys(f"{source.PREFIX}/runs/") == []  # the source's hashes are removed once compared
    assert _mails_about(settings, report["run_id"]) == []


def test_the_dag_tasks_wait_for_the_lake_and_the_warehouse_then_reconcile_equal(pipeline, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from tidewater.config import REPO_ROOT

    settings, lake, group = pipeline
    kafka = json.loads(os.environ[f"AIRFLOW_CONN_{settings.kafka_conn_id.upper()}"])
    kafka["extra"]["group.id"] = group  # the DAG's drain group, as the test drains
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.kafka_conn_id.upper()}", json.dumps(kafka))
    for name, value in lake.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TIDEWATER_WAREHOUSE_PATH", settings.warehouse_path)
    dag = DagBag(dag_folder=REPO_ROOT / "dags" / "reconcile.py").dags["reconcile"]
    snapshot_source, lake_holds, warehouse_holds, compare_task = (
        dag.get_task(t).python_callable
        for t in ("snapshot_source", "lake_holds_snapshot", "warehouse_holds_snapshot", "compare"))
    with psycopg.connect(settings.shop_conninfo(), autocommit=True) as conn:  # a change the lake does not have yet
        email = f"reconcile-{uuid.uuid4().hex[:8]}@example.com"
        customer = conn.execute("INSERT INTO shop.customers (email, full_name) VALUES (%s, 'Reconciled') "
                                "RETURNING customer_id", (email,)).fetchone()[0]

    state = through_xcom(snapshot_source())  # each state passes to the next task as XCom

    assert not lake_holds(state).is_done
    drained = [drain_once(settings, lake, topic, group) for topic in state["watermarks"]]
    held = lake_holds(state)
    assert held.is_done
    state = through_xcom(held.xcom_value)
    customers = next(d for d in drained if d.topic == table_topic(settings, "customers"))
    assert customers.snapshot_id is not None and state["lake_snapshot"] >= customers.snapshot_id
    assert not warehouse_holds(state).is_done
    built = dbt("build", "--select", "staging", "intermediate", lake=lake, warehouse=settings.warehouse_path)
    assert built.returncode == 0, built.stdout[-4000:]
    held = warehouse_holds(state)
    assert held.is_done
    rows = compare_task(through_xcom(held.xcom_value))  # raises (SourceDiffers) unless every table is equal

    latest = lake.bucket.get_json(run.LATEST_KEY)
    assert latest["run_id"] == state["snapshot"]["run_id"] and latest["status"] == "equal"
    assert latest["lake_snapshot"] == state["lake_snapshot"]
    assert rows == {t["table"]: t["source_rows"] for t in latest["tables"]}
    with duckdb.connect(settings.warehouse_path, read_only=True) as con:
        assert con.execute("select full_name from int_customers_current where customer_id = ?",
                           [customer]).fetchone() == ("Reconciled",)


def _a_customer_in_the_lake(settings, lake) -> int:
    """A customer PostgreSQL has and the lake has changes of."""
    in_lake = {key for (key,) in lake.con.execute("select distinct customer_id from lake.main.customers").fetchall()}
    with psycopg.connect(settings.shop_conninfo(admin=True)) as conn:
        existing = {row[0] for row in conn.execute("SELECT customer_id FROM shop.customers").fetchall()}
    return min(in_lake & existing)


def test_a_change_deleted_from_the_lake_is_mailed_and_recorded(pipeline):
    settings, lake, group = pipeline
    if not lake.bucket.keys(run.LATEST_KEY):
        _reconcile(settings, lake, group)  # the lake and the warehouse of the first test
    customer = _a_customer_in_the_lake(settings, lake)
    # Behind the pipeline's back: no drain, no position moved. The warehouse's versions are rebuilt only for keys
    # with new changes, so only a full refresh (what the email advises) shows what the lake lost.
    lake.con.execute("delete from lake.main.customers where customer_id = ?", [customer])

    report = _reconcile(settings, lake, group, "--full-refresh")

    customers = next(t for t in report["tables"] if t["table"] == "customers")
    assert customers["status"] == "different"
    assert (customers["missing"], customers["extra"], customers["differing"]) == (1, 0, 0)
    assert customers["examples"] == {"missing": [str(customer)]}
    assert customers["warehouse_rows"] == customers["source_rows"] - 1
    assert {t["table"] for t in report["tables"] if t["status"] != "equal"} == {"customers"}
    assert report["status"] == "different"
    assert lake.bucket.get_json(run.LATEST_KEY) == report
    deadline = time.monotonic() + 30
    while not (mails := _mails_about(settings, report["run_id"])) and time.monotonic() < deadline:
        time.sleep(0.5)
    [mail] = mails
    assert mail["Subject"] == "[tidewater] RECONCILE differs from PostgreSQL: customers (1 missing)"
    html = mail.get_body(("html",)).get_content()
    assert f"keys {customer}" in html and "shop.customers" in html
    with duckdb.connect(settings.warehouse_path, read_only=True) as con:  # the warehouse really lacks it
        assert con.execute("select count(*) from int_customers_current where customer_id = ?",
                           [customer]).fetchone() == (0,)


# (PostgreSQL type, the value in PostgreSQL, the same value as the warehouse holds it, its `_special` text)
SAME_VALUES = [
    ("numeric(12,2)", "12.50", "12.50::decimal(12,2)", None),
    ("numeric(12,2)", "9999999999.99", "9999999999.99::decimal(12,2)", None),
    ("numeric(12,2)", "0", "0.00::decimal(12,2)", None),
    ("numeric(12,2)", "NaN", "null::decimal(12,2)", "NaN"),
    # A NUMERIC with a precision cannot be infinite; one without is text in the warehouse.
    ("numeric", "Infinity", "'Infinity'", None),
    ("numeric", "-Infinity", "'-Infinity'", None),
    ("numeric", "NaN", "'NaN'", None),
    ("numeric", "123456789012345678901234567890123456789.50", "'123456789012345678901234567890123456789.50'", None),
    ("numeric(100,2)", "-1.10", "'-1.10'", None),
    ("timestamp with time zone", "2026-10-25 02:30:00+02", "'2026-10-25 00:30:00+00'::timestamptz", None),
    ("timestamp with time zone", "1969-12-31 23:59:59.999999+00", "'1969-12-31 23:59:59.999999+00'::timestamptz", None),
    ("timestamp with time zone", "infinity", "'infinity'::timestamptz", None),
    ("timestamp with time zone", "-infinity", "'-infinity'::timestamptz", None),
    ("timestamp without time zone", "2026-01-05 10:00:00", "'2026-01-05 10:00:00'::timestamp", None),
    ("date", "1960-02-29", "date '1960-02-29'", None),
    ("date", "infinity", "'infinity'::date", None),
    ("date", "-infinity", "'-infinity'::date", None),
    ("jsonb", '{"b": [1, 2.50], "a": "ü"}', """'{"a": "ü", "b": [1, 2.50]}'""", None),
    ("character(3)", "EUR", "'EUR'", None),
    ("boolean", "false", "false", None),
    ("uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid", None),
    ("text", "", "''", None),
    ("text", None, "null::varchar", None),
    ("text", "a|b\\c", "'a|b\\c'", None),
]


def test_postgres_and_duckdb_hash_each_value_the_same(settings):
    pg_hashes, duck_hashes = [], []
    with psycopg.connect(settings.shop_conninfo(admin=True)) as conn:
        for pg_type, value, _, _ in SAME_VALUES:
            column = canonical.Column("c", pg_type, "c")
            hashed = canonical.pg_row_hash([canonical.pg_value(column, "c")])
            query = f"SELECT {hashed} FROM (SELECT %s::{pg_type} AS c) t"
            pg_hashes.append(conn.execute(query, (value,)).fetchone()[0])
    for pg_type, _, literal, special in SAME_VALUES:
        column = canonical.Column("c", pg_type, "c")
        value = canonical.duck_value(column, "c", "s" if special else None)
        duck_hashes.append(duckdb.sql(f"select {canonical.duck_row_hash([value])} "
                                      f"from (select {literal} as c, '{special}' as s)").fetchone()[0])

    assert list(zip(SAME_VALUES, duck_hashes, strict=True)) == list(zip(SAME_VALUES, pg_hashes, strict=True))
