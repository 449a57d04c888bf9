"""The gate's suites: complete, and the GX files the gate builds at run time are what the code defines."""

from __future__ import annotations

import dataclasses
import json
import shutil

import duckdb
import pytest

from tidewater.config import REPO_ROOT, Settings
from tidewater.gate import context, suites
from tidewater.tables import registry


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A context folder with the committed great_expectations.yml only, built as the gate builds it."""
    root = tmp_path_factory.mktemp("gx")
    shutil.copy(REPO_ROOT / "great_expectations" / "great_expectations.yml", root)
    settings = dataclasses.replace(Settings(), gx_context_dir=str(root))
    context.ensure_built(settings)
    return root


def test_the_gate_builds_its_files_once_per_version_of_the_code(built, monkeypatch):
    calls = []
    monkeypatch.setattr(context, "sync", lambda settings: calls.append(settings))
    settings = dataclasses.replace(Settings(), gx_context_dir=str(built))

    context.ensure_built(settings)
    assert calls == []  # built already for this code
    (built / "uncommitted" / "suites.sha256").write_text("older code")
    context.ensure_built(settings)
    assert len(calls) == 1 and (built / "uncommitted" / "suites.sha256").read_text() == \
        context.definitions_fingerprint()


def test_the_committed_context_file_is_the_one_the_gate_writes(built):
    # Building rewrites the datasource section of great_expectations.yml: committed as built, nothing changes.
    assert (built / "great_expectations.yml").read_text() == \
        (REPO_ROOT / "great_expectations" / "great_expectations.yml").read_text()


def test_every_mart_has_a_suite_with_a_unique_not_null_key():
    for mart in suites.MARTS:
        types = [(e.type, e.kwargs.get("column")) for e in suites.batch(mart).expectations]
        unique = [column for kind, column in types if kind == "expect_column_values_to_be_unique"]
        assert unique, f"{mart} has no unique key"
        assert ("expect_column_values_to_not_be_null", unique[0]) in types, mart


@pytest.mark.parametrize("batch", suites.BATCHES, ids=lambda b: b.name)
def test_the_built_suite_equals_the_code(batch, built):
    committed = json.loads((built / "expectations" / f"{batch.name}.json").read_text())

    as_committed = [(e["type"], _numbers_as_floats(e["kwargs"])) for e in committed["expectations"]]
    assert as_committed == [(e.type, _numbers_as_floats(e.kwargs)) for e in batch.expectations]


def _numbers_as_floats(value):
    """GX stores every number as a float."""
    if isinstance(value, dict):
        return {key: _numbers_as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(item) for item in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return float(value)


@pytest.mark.parametrize("batch", suites.BATCHES, ids=lambda b: b.name)
def test_every_batch_has_a_validation_definition_and_a_checkpoint(batch, built):
    validation = json.loads((built / "validation_definitions" / f"{batch.name}.json").read_text())
    checkpoint = json.loads((built / "checkpoints" / f"publish_{batch.name}.json").read_text())

    assert validation["suite"]["name"] == batch.name
    assert [v["name"] for v in checkpoint["validation_definitions"]] == [batch.name]
    assert checkpoint["actions"] == []  # data docs are rendered off the critical path (the docs task)


def test_reference_frame_resolves_present_keys_and_leaves_missing_ones_null():
    con = duckdb.connect()
    con.execute("create table dims as select * from (values (1), (2)) as v(dim_id)")
    con.execute("create table facts as select * from (values (10, 1), (11, 3), (12, null)) as v(fact_id, dim_id)")

    rows = con.execute(suites.references_sql("facts", "fact_id", {"dim_id": ("dims", "dim_id")}) +
                       " order by fact_id").fetchall()

    assert rows == [(10, 1, 1), (11, 3, None), (12, None, None)]


def test_unknown_batch_is_named():
    with pytest.raises(KeyError, match="no gate batch named 'nope'"):
        suites.batch("nope")


def test_a_change_dated_in_the_future_does_not_count_as_the_newest():
    con = duckdb.connect()
    con.execute("create table int_order_items_current (order_id int, quantity int, unit_price_amount decimal(12,2), "
                "discount_amount decimal(12,2))")
    con.execute("create table int_orders_current (order_id int)")
    for table in registry():
        con.execute(f"create table {table.versions_model} as select now() - interval 2 hours as valid_from "
                    "union all select now() + interval 3 days")

    newest, staged = con.execute(f"select newest_change_at, staged_at from ({suites.source_state_sql()})").fetchone()

    assert 1.9 < (staged - newest).total_seconds() / 3600 < 2.1
