"""The demo shop's DAG comes from a DAG bundle of its own (examples/shop/dags), beside the product's dags/, and
runs from there against the shop with the example's own package."""

from __future__ import annotations

import time
import uuid

import psycopg


def test_shop_traffic_runs_from_the_shop_example_bundle(shop, airflow_api):
    assert airflow_api.wait_for_dag("cdc_drain")["bundle_name"] == "dags-folder"
    assert airflow_api.wait_for_dag("shop_traffic")["bundle_name"] == "shop-example"
    with psycopg.connect(shop.shop_conninfo(admin=True)) as conn:
        customers_before = conn.execute("SELECT count(*) FROM shop.customers").fetchone()[0]

    run_id = f"bundle_test_{uuid.uuid4().hex[:10]}"
    airflow_api.request("PATCH", "dags/shop_traffic", json={"is_paused": False})
    try:
        airflow_api.request("POST", "dags/shop_traffic/dagRuns", json={
            "dag_run_id": run_id, "logical_date": None, "conf": {"rate": 5.0, "duration_s": 3, "seed": 7}})
        deadline = time.monotonic() + 240
        while (state := airflow_api.request("GET", f"dags/shop_traffic/dagRuns/{run_id}")["state"]) in (
                "queued", "running") and time.monotonic() < deadline:
            time.sleep(2)
    finally:
        airflow_api.request("PATCH", "dags/shop_traffic", json={"is_paused": True})
    assert state == "success"

    counts = airflow_api.request(
        "GET", f"dags/shop_traffic/dagRuns/{run_id}/taskInstances/run_traffic/xcomEntries/return_value")["value"]
    with psycopg.connect(shop.shop_conninfo(admin=True)) as conn:
        customers_after = conn.execute("SELECT count(*) FROM shop.customers").fetchone()[0]
    assert sum(counts.values()) == 15  # rate x duration operations
    assert customers_after - customers_before == counts.get("sign_up", 0) - counts.get("delete_customer", 0)
