"""The gate on a real warehouse (built by dbt from a freshly drained lake): bad rows never reach the marts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from tests.support.dbt import TABLES, dbt
from tests.support.lake import drain_once, new_lake, wait_for_cdc_catch_up
from tests.support.marts import differences, new_marts
from tidewater.cdc.connector import table_topic
from tidewater.config import REPO_ROOT, Settings
from tidewater.gate import context, docs, publish, stage, steps
from tidewater.gate.report import GateFailed
from tidewater.gate.suites import batches, mart_names


@pytest.fixture(scope="module")
def built(shop_changes, tmp_path_factory):
    """The shop drained into a fresh lake, the warehouse built into a temporary file, a private copy of the
    committed GX context and a fresh marts catalog: Settings pointing at all of them, the marts session, the lake."""
    wait_for_cdc_catch_up(shop_changes)
    root = tmp_path_factory.mktemp("gate")
    with new_lake(shop_changes) as lake:
        group = f"test-gate-{uuid.uuid4().hex[:8]}"
        for table in TABLES:
            drain_once(shop_changes, lake, table_topic(shop_changes, table), group)
        warehouse = root / "warehouse.duckdb"
        run = dbt("build", lake=lake, warehouse=str(warehouse))
        assert run.returncode == 0, run.stdout[-4000:]
        with new_marts(shop_changes, root / "marts", bucket=lake.bucket.bucket) as scratch:
            settings = gate_settings(scratch.settings, root, warehouse)
            marts = publish.open_marts(settings)
            try:
                yield settings, marts, lake
            finally:
                marts.con.close()


def gate_settings(settings: Settings, root: Path, warehouse: Path) -> Settings:
    """Settings for a private gate: its own GX context (a copy of the committed one)."""
    context = root / f"gx-{uuid.uuid4().hex[:6]}"
    shutil.copytree(REPO_ROOT / "great_expectations", context, ignore=shutil.ignore_patterns("uncommitted"))
    return replace(settings, warehouse_path=str(warehouse), gx_context_dir=str(context))


def published_state(settings: Settings) -> dict:
    """Everything a reader of the published marts can see (as the marts reader), as checksums."""
    with publish.open_published(settings) as con:
        current = publish.current(con)
        tables = {table: con.execute(f"select count(*), sum(hash(columns(*))) from marts.main.{table}").fetchone()
                  for table in mart_names()}
    return {"publication": current, "tables": tables}


def publish_once(settings: Settings, marts) -> str:
    report = steps.run_gate(settings)
    steps.publish_marts(settings, report.publication_id, marts)
    return report.publication_id


def test_clean_run_publishes_marts_equal_to_the_warehouse(built):
    settings, marts, lake = built

    # As the warehouse DAG's publish task does: quarantine check (this lake has none), gate, publish.
    publication_id = steps.gate_and_publish(lake.settings(settings)).publication_id

    assert publish.current_publication(settings) == publication_id
    assert marts.bucket.get_json(publish.POINTER_KEY)["publication_id"] == publication_id
    assert not stage.candidate_path(settings, publication_id).exists(), "a published candidate is removed"
    with publish.open_published(settings) as con:
        current = publish.current(con)
        con.execute(f"attach '{settings.warehouse_path}' as warehouse (read_only)")
        for table in mart_names():
            rows = con.execute(f"select count(*) from warehouse.main.{table}").fetchone()[0]
            assert (table, differences(con, f"warehouse.main.{table}", f"marts.main.{table}")) == (table, 0)
            assert current.rows[table] == rows
    assert rows > 0, "the marts are empty: the test proves nothing"


def test_bad_rows_fail_the_gate_and_leave_the_publication_intact(built, tmp_path):
    settings, marts, _ = built
    publish_once(settings, marts)
    before = published_state(settings)
    bad_warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(settings.warehouse_path, bad_warehouse)
    with duckdb.connect(str(bad_warehouse)) as con:
        # A negative quantity, and an order item whose order does not exist (which dbt's relationships test refuses
        # in a warehouse run; copied in here, the gate's reconciliation finds the extra item).
        con.execute("update fct_order_items set quantity = -3 "
                    "where order_item_id = (select min(order_item_id) from fct_order_items)")
        con.execute("insert into fct_order_items by name select * replace (order_item_id + 1000000000 as "
                    "order_item_id, order_id + 1000000000 as order_id) from fct_order_items limit 1")
    bad = replace(settings, warehouse_path=str(bad_warehouse))

    with pytest.raises(GateFailed) as failure:
        steps.run_gate(bad)

    message = str(failure.value)
    assert "fct_order_items: expect_column_values_to_be_between(quantity)" in message
    assert "reconciliation: expect_column_pair_values_to_be_equal(fact_item_count, source_item_count)" in message
    assert published_state(settings) == before
    assert list(stage.candidates_dir(settings).iterdir()) == []
    pages = [line.split(" (file ")[1].rstrip(")") for line in message.splitlines() if line.startswith("Data docs: ")]
    quantity_page = next(Path(page).read_text() for page in pages if "/fct_order_items/" in page)
    assert "quantity" in quantity_page and "-3" in quantity_page


def test_docs_are_built_from_a_copy_while_another_process_holds_the_warehouse(built, monkeypatch):
    settings, marts, lake = built
    for name, value in lake.env.items():  # dbt attaches this test's lake (dbt/profiles.yml's plugin)
        monkeypatch.setenv(name, value)
    publication_id = publish_once(settings, marts)
    assert steps.docs_stale(settings), "a gate ran since the docs were built"
    copy = docs.copy_warehouse(settings)  # what the data_docs DAG does holding the warehouse pool's slot
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(300)", settings.warehouse_path],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(duckdb.IOException, match="lock"):  # a warehouse run holds it like this
            duckdb.connect(settings.warehouse_path, read_only=True)

        copied = steps.build_docs(settings, str(copy), lake=marts)
    finally:
        holder.kill()
        holder.wait()

    catalog = json.loads((docs.site_dir(settings, "dbt") / "catalog.json").read_text())
    assert {"order_id", "order_total_amount"} <= set(catalog["nodes"]["model.shop.fct_orders"]["columns"])
    assert publication_id in (docs.site_dir(settings, "gx") / "index.html").read_text()
    assert marts.bucket.keys(f"{docs.LAKE_PREFIX}/dbt/catalog.json") == [f"{docs.LAKE_PREFIX}/dbt/catalog.json"]
    assert copied >= len(docs.DBT_DOCS_FILES) + 1
    assert not copy.exists(), "the copy is removed once the docs are built"
    assert not steps.docs_stale(settings)


def test_gate_runs_past_the_retention_leave_the_store_the_docs_and_the_lake_copy(built):
    settings, marts, _ = built
    old, new = publish_once(settings, marts), publish_once(settings, marts)
    context.update_data_docs(settings)
    assert docs.copy_to_lake(settings, marts) > 0
    assert docs.copy_to_lake(settings, marts) == 0, "nothing changed: nothing copied again"
    pages = f"{docs.LAKE_PREFIX}/gx/validations/"
    assert any(f"/publish-{old}/" in key for key in marts.bucket.keys(pages))

    expired = replace(settings, marts_keep_hours=1e-9)  # every run but each suite's newest is past it
    context.update_data_docs(expired)
    copied = docs.copy_to_lake(expired, marts)

    runs = {path.name for path in context.validations_dir(settings).glob("*/publish-*")}
    assert runs == {f"publish-{new}"}
    suites = {path.parent.name for path in context.validations_dir(settings).glob(f"*/publish-{new}")}
    assert suites == {batch.name for batch in batches(settings)}  # each suite's newest run stays
    index = (docs.site_dir(settings, "gx") / "index.html").read_text()
    assert new in index and old not in index
    keys = marts.bucket.keys(pages)
    assert not [key for key in keys if f"/publish-{old}/" in key]  # the mirror deleted the pruned pages
    assert sum(f"/publish-{new}/" in key for key in keys) == len(suites)
    assert copied >= 1  # the index at least
    assert not (docs.site_dir(settings, "gx") / "validations" / next(iter(suites)) / f"publish-{old}").exists()


def test_rollback_publishes_the_previous_publication_again_and_young_ones_are_kept(built):
    settings, marts, _ = built
    first, second, third = (publish_once(settings, marts) for _ in range(3))

    kept = [p.publication_id for p in publish.history(marts.con)]
    assert kept[-3:] == [first, second, third], "publications younger than TIDEWATER_MARTS_KEEP_HOURS are kept"

    back = publish.rollback(settings, marts)

    assert back.publication_id == second
    assert publish.current_publication(settings) == second
    assert marts.bucket.get_json(publish.POINTER_KEY)["publication_id"] == second
    snapshot = next(p.snapshot_id for p in publish.history(marts.con) if p.publication_id == second)
    with publish.open_published(settings) as con:
        for table in mart_names():
            assert (table, differences(con, f"marts.main.{table}", f"marts.main.{table} at (version => {snapshot})")
                    ) == (table, 0)
