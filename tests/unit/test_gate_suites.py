"""The gate's suites: complete, and the GX files the gate builds at run time are what the code defines."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import types

import duckdb
import pytest

from tidewater.config import REPO_ROOT, ConfigError, Settings
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
        context.definitions_fingerprint(settings)


def test_the_committed_context_file_is_the_one_the_gate_writes(built):
    # Building rewrites the datasource section of great_expectations.yml: committed as built, nothing changes.
    assert (built / "great_expectations.yml").read_text() == \
        (REPO_ROOT / "great_expectations" / "great_expectations.yml").read_text()


def test_keys_and_references_are_dbt_tests_and_the_gate_does_not_check_them_again():
    """No rule in both: every mart's key is unique and not null by its dbt tests; the gate has no key, foreign
    key or accepted-values rule."""
    import yaml

    marts = {model["name"]: model for model in yaml.safe_load(
        (REPO_ROOT / "examples" / "shop" / "dbt" / "models" / "marts" / "_marts.yml").read_text())["models"]}
    for mart in suites.mart_names():
        tested = [set(map(str, column.get("data_tests", []))) for column in marts[mart]["columns"]]
        assert any({"unique", "not_null"} <= tests for tests in tested), f"{mart} has no dbt-tested key"
    rules = [(e.type, e.kwargs) for batch in suites.batches() for e in batch.expectations]
    assert not [r for r in rules if r[0] in ("expect_column_values_to_be_unique", "expect_column_values_to_be_in_set")]
    assert not [r for r in rules if r[0] == "expect_column_values_to_not_be_null" and r[1]["column"].endswith("_key")]
    assert not [r for r in rules if str(r[1].get("column_B", "")).startswith("resolved_")]


@pytest.mark.parametrize("batch", suites.batches(), ids=lambda b: b.name)
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


@pytest.mark.parametrize("batch", suites.batches(), ids=lambda b: b.name)
def test_every_batch_has_a_validation_definition_and_a_checkpoint(batch, built):
    validation = json.loads((built / "validation_definitions" / f"{batch.name}.json").read_text())
    checkpoint = json.loads((built / "checkpoints" / f"publish_{batch.name}.json").read_text())

    assert validation["suite"]["name"] == batch.name
    assert [v["name"] for v in checkpoint["validation_definitions"]] == [batch.name]
    assert checkpoint["actions"] == []  # data docs are rendered off the critical path (the docs task)


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


def test_the_marts_are_the_projects_own_module_and_a_wrong_one_is_named(monkeypatch):
    with pytest.raises(ConfigError, match=r"TIDEWATER_GATE_MARTS='no_such_marts': no such module"):
        suites.mart_names(dataclasses.replace(Settings(), gate_marts="no_such_marts"))
    mine = types.ModuleType("my_marts")
    mine.MARTS, mine.BATCHES = (), ()
    monkeypatch.setitem(sys.modules, "my_marts", mine)
    settings = dataclasses.replace(Settings(), gate_marts="my_marts")
    with pytest.raises(ConfigError, match=r"TIDEWATER_GATE_MARTS='my_marts': the module has no SOURCE_FIGURES"):
        suites.batches(settings)

    mine.SOURCE_FIGURES = ""  # no marts: the gate checks the source's freshness only
    con = duckdb.connect()
    for table in registry():
        con.execute(f"create table {table.versions_model} as select now() - interval 1 hour as valid_from")

    assert suites.mart_names(settings) == () and suites.batches(settings) == (suites.FRESHNESS,)
    assert [column[0] for column in con.execute(suites.source_state_sql(settings)).description] == [
        "newest_change_at", "staged_at"]
    assert suites.mart_names() == ("dim_customer", "dim_product", "dim_date", "fct_order_items", "fct_orders",
                                   "mart_daily_sales", "mart_customer_lifetime_value", "mart_product_performance")
