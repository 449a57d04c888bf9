"""The gate on a real warehouse (built by dbt from a freshly drained bucket): bad rows never reach the marts."""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from tidewater.cdc.connector import table_topic
from tidewater.config import REPO_ROOT, Settings, get_connection
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.gate import context, publish, stage, steps
from tidewater.gate.report import GateFailed
from tidewater.gate.suites import MARTS

from .conftest import new_bucket
from .lake_checks import wait_for_cdc_catch_up
from .test_dbt_staging import TABLES, dbt
from .test_drain import drain_once


@pytest.fixture(scope="module")
def built(shop_changes, tmp_path_factory):
    """The shop drained into a fresh bucket, the warehouse built into a temporary file, a private copy of the
    committed GX context and an empty marts folder: Settings pointing at all of them, and the bucket."""
    wait_for_cdc_catch_up(shop_changes)
    root = tmp_path_factory.mktemp("gate")
    with new_bucket(shop_changes) as lake:
        group = f"test-gate-{uuid.uuid4().hex[:8]}"
        for table in TABLES:
            drain_once(shop_changes, lake, table_topic(shop_changes, table), group)
        warehouse = root / "warehouse.duckdb"
        run = dbt("build", bucket=lake.bucket, warehouse=str(warehouse))
        assert run.returncode == 0, run.stdout[-4000:]
        yield gate_settings(shop_changes, root, warehouse, lake.bucket), lake


def gate_settings(settings: Settings, root: Path, warehouse: Path, bucket: str) -> Settings:
    """Settings for a private gate: its own GX context (a copy of the committed one) and marts folder."""
    context = root / f"gx-{uuid.uuid4().hex[:6]}"
    shutil.copytree(REPO_ROOT / "great_expectations", context, ignore=shutil.ignore_patterns("uncommitted"))
    return replace(settings, warehouse_path=str(warehouse), lake_bucket=bucket, gx_context_dir=str(context),
                   marts_dir=str(root / f"marts-{uuid.uuid4().hex[:6]}"), marts_keep_publications=2)


def published_state(settings: Settings, lake) -> dict:
    """Everything a reader of the published marts can see, as checksums."""
    link = publish.published_path(settings)
    objects = lake.client.list_objects_v2(Bucket=lake.bucket, Prefix=publish.PREFIX + "/").get("Contents", [])
    pointer = lake.client.get_object(Bucket=lake.bucket, Key=publish.POINTER_KEY)["Body"].read()
    return {"file": hashlib.sha256(link.read_bytes()).hexdigest(), "target": str(link.resolve()),
            "pointer": hashlib.sha256(pointer).hexdigest(),
            "objects": sorted((item["Key"], item["ETag"]) for item in objects)}


def publish_once(settings: Settings, lake) -> str:
    report = steps.run_gate(settings)
    steps.publish_marts(settings, report.publication_id, lake)
    return report.publication_id


def differences(con: duckdb.DuckDBPyConnection, left: str, right: str) -> int:
    """Rows in one relation and not the other (both ways, duplicates counted)."""
    return con.execute(f"select count(*) from ((from {left} except all from {right}) "
                       f"union all (from {right} except all from {left}))").fetchone()[0]


def test_clean_run_publishes_marts_equal_to_the_warehouse(built):
    settings, lake = built

    publication_id = publish_once(settings, lake)

    assert publish.current_publication(settings) == publication_id
    assert lake.get_json(publish.POINTER_KEY)["publication_id"] == publication_id
    with duckdb.connect(settings.warehouse_path, read_only=True) as con:
        load_extensions(con, "httpfs")
        con.execute(s3_secret_sql(get_connection(settings.lake_conn_id)))
        con.execute(f"attach '{publish.published_path(settings)}' as published (read_only)")
        for table in MARTS:
            parquet = f"read_parquet('{lake.uri(publish.s3_prefix(publication_id) + table + '.parquet')}')"
            rows = con.execute(f"select count(*) from main.{table}").fetchone()[0]
            assert (table, differences(con, f"main.{table}", f"published.main.{table}")) == (table, 0)
            assert (table, differences(con, f"main.{table}", parquet)) == (table, 0)
            assert lake.get_json(publish.POINTER_KEY)["rows"][table] == rows
    assert rows > 0, "the marts are empty: the test proves nothing"


def test_bad_rows_fail_the_gate_and_leave_the_publication_intact(built, tmp_path):
    settings, lake = built
    publish_once(settings, lake)
    before = published_state(settings, lake)
    bad_warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(settings.warehouse_path, bad_warehouse)
    with duckdb.connect(str(bad_warehouse)) as con:
        # A negative quantity, and an order item whose order does not exist.
        con.execute("update fct_order_items set quantity = -3 "
                    "where order_item_id = (select min(order_item_id) from fct_order_items)")
        con.execute("insert into fct_order_items by name select * replace (order_item_id + 1000000000 as "
                    "order_item_id, order_id + 1000000000 as order_id) from fct_order_items limit 1")
    bad = replace(settings, warehouse_path=str(bad_warehouse))

    with pytest.raises(GateFailed) as failure:
        steps.run_gate(bad)

    message = str(failure.value)
    assert "fct_order_items: expect_column_values_to_be_between(quantity)" in message
    assert re.search(r"fct_order_items_references: expect_column_pair_values_to_be_equal\(order_id, "
                     r"resolved_order_id\) — 1 unexpected of \d+, e\.g\. \[\[1\d{9}, None\]\]", message), message
    assert "reconciliation: expect_column_pair_values_to_be_equal(fact_item_count, source_item_count)" in message
    assert published_state(settings, lake) == before
    assert list(stage.candidates_dir(settings).iterdir()) == []
    context.update_data_docs(bad)
    pages = [line.split(" (file ")[1].rstrip(")") for line in message.splitlines() if line.startswith("Data docs: ")]
    quantity_page = next(Path(page).read_text() for page in pages if "/fct_order_items/" in page)
    assert "quantity" in quantity_page and "-3" in quantity_page
    assert "references" in " ".join(pages)


def test_rollback_returns_to_the_previous_publication_and_old_ones_are_pruned(built):
    settings, lake = built
    first, second, third = (publish_once(settings, lake) for _ in range(3))

    kept = publish.list_publications(settings)
    assert kept[-2:] == [second, third] and first not in kept
    assert lake.keys(publish.s3_prefix(first)) == []

    assert publish.rollback(settings, lake) == second

    assert publish.current_publication(settings) == second
    assert lake.get_json(publish.POINTER_KEY)["publication_id"] == second
    manifest = lake.get_json(publish.s3_prefix(second) + publish.MANIFEST)
    assert publish.file_sha256(publish.published_path(settings)) == manifest["duckdb_sha256"]
