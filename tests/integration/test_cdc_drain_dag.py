"""`airflow dags test cdc_drain` on the real stack: shop changes land typed in MinIO, assets get events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg

from tests.support.airflow import airflow_dags_test, metadata_session
from tests.support.lake import now_ms, read_events
from tidewater.cdc.connector import table_topic
from tidewater.lake import objects as layout


def test_dags_test_cdc_drain_lands_shop_changes_with_exact_types(cdc, lake):
    since = now_ms()
    started = datetime.now(UTC)
    email = f"drain-{uuid.uuid4().hex[:8]}@example.com"
    sku = f"DRAIN-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cdc.shop_conninfo(), autocommit=True) as conn:
        customer_id = conn.execute(
            """INSERT INTO shop.customers (email, full_name, phone, birth_date, preferences, created_at)
               VALUES (%s, 'Zoë Ünal', NULL, '1970-01-02', '{"tier": "gold", "n": [1, 2]}',
                       '2026-03-29 00:59:59.123456+00') RETURNING customer_id""",
            (email,),
        ).fetchone()[0]
        product_id = conn.execute(
            # Inactive: the simulator never orders it (five of them would overflow an order total).
            """INSERT INTO shop.products (sku, product_name, category, description, price, is_active)
               VALUES (%s, 'Big Ticket', 'audio', 'd', 9999999999.99, false) RETURNING product_id""",
            (sku,),
        ).fetchone()[0]
    assert read_events(cdc, table_topic(cdc, "customers"), since, "customer_id", customer_id, count=1)
    assert read_events(cdc, table_topic(cdc, "products"), since, "product_id", product_id, count=1)

    run = airflow_dags_test("cdc_drain", env=lake.env)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    customer = lake.con.execute(
        """select full_name, phone, birth_date, preferences, created_at, _op, typeof(birth_date),
                  typeof(created_at)
           from lake.main.customers where email = ?""", [email]).fetchall()
    assert customer == [("Zoë Ünal", None, date(1970, 1, 2), '{"n": [1, 2], "tier": "gold"}',
                         datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC), "c", "DATE",
                         "TIMESTAMP WITH TIME ZONE")]
    product = lake.con.execute("select price, typeof(price) from lake.main.products where sku = ?", [sku]).fetchall()
    assert product == [(Decimal("9999999999.99"), "DECIMAL(12,2)")]
    assert _asset_event_rows(lake.env, lake.bucket.uri(layout.DATA + "/customers"), started) >= 1
    # The run's lake-wide summary: lake_updated's return value is what its s3://<bucket>/lake/main event carries.
    summary = _task_return(lake.env, "cdc_drain", "lake_updated", started)
    assert summary["rows"].get(table_topic(cdc, "customers"), 0) >= 1
    assert _asset_event_rows(lake.env, lake.bucket.uri(layout.DATA), started) == sum(summary["rows"].values())


def _task_return(env: dict, dag_id: str, task_id: str, since: datetime):
    """The return value of the newest run of a task since `since` (from the metadata a dags test with `env` wrote)."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    with metadata_session(env) as session:
        value = session.scalars(
            select(XComModel.value).where(XComModel.dag_id == dag_id, XComModel.task_id == task_id,
                                          XComModel.key == "return_value", XComModel.timestamp >= since)
            .order_by(XComModel.timestamp.desc()).limit(1)).first()
    assert value is not None, f"{dag_id}.{task_id} returned nothing since {since}"
    return json.loads(value) if isinstance(value, str) else value


def _asset_event_rows(env: dict, uri: str, since: datetime) -> int:
    """Rows reported by the asset events of `uri` since `since` (from the metadata a dags test with `env` wrote)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    with metadata_session(env) as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri, AssetEvent.timestamp >= since)
        ).all()
        total = 0
        for event in events:
            rows = event.extra.get("rows", 0)
            total += sum(rows.values()) if isinstance(rows, dict) else rows
        return total
