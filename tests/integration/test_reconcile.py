"""Reconciliation with the source on the real stack: a clean pipeline reconciles equal, and a row deleted
from the lake behind the pipeline's back is reported (mailed and recorded) with its table and key.

Each reconciliation runs the steps of the reconcile DAG in order: the source snapshot, Debezium's slot
past its LSN, a drain (into a test bucket, with a test consumer group) past the watermarks read after
it, a dbt build of a scratch warehouse, the warehouse holding those lake files, the comparison."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import duckdb
import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tidewater import drain
from tidewater.alerts import notify
from tidewater.config import get_connection
from tidewater.duck import connect_lake
from tidewater.mailsink import read_messages
from tidewater.reconcile import canonical, run, source

from .conftest import new_bucket
from .test_dbt_staging import dbt
from .test_drain import drain_once

TIMEOUT_S = 180


@pytest.fixture(scope="module")
def pipeline(shop_changes, tmp_path_factory):
    """Settings pointing at a new bucket and a scratch warehouse file, and the drain's consumer group."""
    workdir = tmp_path_factory.mktemp("reconcile")
    with new_bucket(shop_changes) as lake:
        settings = replace(shop_changes, lake_bucket=lake.bucket, warehouse_path=str(workdir / "warehouse.duckdb"))
        yield settings, lake, f"test-reconcile-{uuid.uuid4().hex[:8]}"


def _reconcile(settings, lake, group: str, *build_args: str) -> dict:
    consumer = drain.kafka_consumer(settings, group_id=group)
    try:
        state = run.snapshot_state(settings, lake, consumer, run_id=run.new_run_id(), timeout_s=TIMEOUT_S)
        for topic in state["watermarks"]:  # the drain, as cdc_drain would run it after the snapshot
            drain_once(settings, lake, topic, group)
        source.wait_for_drain(consumer, run.watermarks(state), group, timeout_s=30)
    finally:
        consumer.close()
    built = dbt("build", "--select", "staging", "intermediate", *build_args, bucket=lake.bucket,
                warehouse=settings.warehouse_path)
    assert built.returncode == 0, built.stdout[-4000:]
    lake_conn = get_connection(settings.lake_conn_id)
    run.wait_for_warehouse(settings, lake, lake_conn, state, timeout_s=30)
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
    assert lake.get_json(run.LATEST_KEY) == report
    assert lake.get_json(f"{run.HISTORY_PREFIX}{report['run_id']}.json") == report
    assert lake.keys(f"{source.PREFIX}/runs/") == []  # the source's hashes are removed once compared
    assert _mails_about(settings, report["run_id"]) == []


def test_the_dag_tasks_wait_for_the_drain_and_the_warehouse_then_reconcile_equal(pipeline, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from tidewater.config import REPO_ROOT

    settings, lake, group = pipeline
    kafka = json.loads(os.environ[f"AIRFLOW_CONN_{settings.kafka_conn_id.upper()}"])
    kafka["extra"]["group.id"] = group  # the DAG's drain group, as the test drains
    monkeypatch.setenv(f"AIRFLOW_CONN_{settings.kafka_conn_id.upper()}", json.dumps(kafka))
    monkeypatch.setenv("TIDEWATER_LAKE_BUCKET", lake.bucket)
    monkeypatch.setenv("TIDEWATER_WAREHOUSE_PATH", settings.warehouse_path)
    dag = DagBag(dag_folder=REPO_ROOT / "dags" / "reconcile.py").dags["reconcile"]
    snapshot_source, lake_holds, warehouse_holds, compare = (
        dag.get_task(t).python_callable
        for t in ("snapshot_source", "lake_holds_snapshot", "warehouse_holds_snapshot", "compare"))
    with psycopg.connect(settings.shop_conninfo(), autocommit=True) as conn:  # a change the lake does not have yet
        email = f"reconcile-{uuid.uuid4().hex[:8]}@example.com"
        customer = conn.execute("INSERT INTO shop.customers (email, full_name) VALUES (%s, 'Reconciled') "
                                "RETURNING customer_id", (email,)).fetchone()[0]

    state = snapshot_source()

    assert not lake_holds(state).is_done
    for topic in state["watermarks"]:
        drain_once(settings, lake, topic, group)
    assert lake_holds(state).is_done
    assert not warehouse_holds(state).is_done
    built = dbt("build", "--select", "staging", "intermediate", bucket=lake.bucket, warehouse=settings.warehouse_path)
    assert built.returncode == 0, built.stdout[-4000:]
    assert warehouse_holds(state).is_done
    rows = compare(state)  # raises (SourceDiffers) unless every table is equal

    latest = lake.get_json(run.LATEST_KEY)
    assert latest["run_id"] == state["snapshot"]["run_id"] and latest["status"] == "equal"
    assert rows == {t["table"]: t["source_rows"] for t in latest["tables"]}
    with duckdb.connect(settings.warehouse_path, read_only=True) as con:
        assert con.execute("select full_name from int_customers_current where customer_id = ?",
                           [customer]).fetchone() == ("Reconciled",)


def _a_customer_changed_once(settings, lake) -> tuple[int, str]:
    """A customer PostgreSQL has whose only change in the lake is in one file: (customer_id, file key)."""
    con = connect_lake(get_connection(settings.lake_conn_id))
    try:
        once = con.execute(f"""
            select customer_id, any_value(filename)
            from read_parquet('s3://{lake.bucket}/raw/customers/*/*.parquet', filename = true, union_by_name = true)
            group by customer_id having count(*) = 1 order by customer_id""").fetchall()
    finally:
        con.close()
    with psycopg.connect(settings.shop_conninfo(admin=True)) as conn:
        existing = {row[0] for row in conn.execute("SELECT customer_id FROM shop.customers").fetchall()}
    customer, uri = next((key, uri) for key, uri in once if key in existing)
    return customer, uri.removeprefix(f"s3://{lake.bucket}/")


def test_a_row_deleted_from_the_lake_is_mailed_and_recorded(pipeline):
    settings, lake, group = pipeline
    if not lake.keys(run.LATEST_KEY):
        _reconcile(settings, lake, group)  # the lake and the warehouse of the first test
    customer, key = _a_customer_changed_once(settings, lake)
    body = lake.client.get_object(Bucket=lake.bucket, Key=key)["Body"].read()
    rows = pq.read_table(BytesIO(body))
    buffer = BytesIO()
    pq.write_table(rows.filter(pc.not_equal(rows["customer_id"], customer)), buffer)
    lake.put_parquet(key, buffer.getvalue())  # behind the pipeline's back: no drain, no offsets moved

    report = _reconcile(settings, lake, group, "--full-refresh")

    customers = next(t for t in report["tables"] if t["table"] == "customers")
    assert customers["status"] == "different"
    assert (customers["missing"], customers["extra"], customers["differing"]) == (1, 0, 0)
    assert customers["examples"] == {"missing": [str(customer)]}
    assert customers["warehouse_rows"] == customers["source_rows"] - 1
    assert {t["table"] for t in report["tables"] if t["status"] != "equal"} == {"customers"}
    assert report["status"] == "different"
    assert lake.get_json(run.LATEST_KEY) == report
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
