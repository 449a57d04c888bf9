"""The table registry (dbt's sources file) and the dbt models that follow from it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tidewater import dbt_models, tables
from tidewater.cli import main as tidewater
from tidewater.config import REPO_ROOT, ConfigError


def document(*table_entries: dict, source: dict | None = None) -> dict:
    """A sources document of one source, `library`, its config.meta.tidewater `source`."""
    return {"version": 2, "sources": [{
        "name": "library", "database": "lake", "schema": "main",
        "config": {"meta": {"tidewater": {"connection": "library_postgres"} if source is None else source}},
        "tables": list(table_entries)}]}


def entry(name: str, **meta) -> dict:
    return {"name": name, "config": {"meta": {"tidewater": meta}}}


def test_the_project_registry_holds_the_shop_tables_with_their_keys():
    registry = tables.load()

    assert set(registry.names) == {"customers", "addresses", "products", "orders", "order_items", "payments"}
    products = registry.table("shop.products")
    assert products.primary_key == ("product_id",) and products.toasted == ("description",)
    assert products.warehouse_column("price") == "price_amount" and products.warehouse_column("sku") == "sku"
    assert products.models == ("stg_shop__products", "int_products_versioned", "int_products_current")
    assert products.topic("shop") == "shop.shop.products" and products.connection == "shop_postgres"


@pytest.mark.parametrize(("old", "new", "widens"), [
    ("INTEGER", "BIGINT", True), ("BIGINT", "INTEGER", False), ("SMALLINT", "INTEGER", True),
    ("DECIMAL(10,2)", "DECIMAL(14,4)", True), ("DECIMAL(10,2)", "DECIMAL(10,3)", False),
    ("DECIMAL(14,4)", "DECIMAL(10,2)", False), ("FLOAT", "DOUBLE", True), ("INTEGER", "VARCHAR", False),
    ("VARCHAR", "VARCHAR", True),
])
def test_which_type_changes_the_lake_widens_in_place(old, new, widens):
    from tidewater.lake.commit import widens as lake_widens

    assert lake_widens(old, new) is widens


def test_the_committed_dbt_models_follow_the_registry():
    drift = dbt_models.check(tables.load())

    assert not drift, f"run `tidewater tables sync`:\n{drift.describe()}"


def test_a_composite_key_and_a_schema_other_than_the_source_name():
    registry = tables.parse(document(entry("loans", primary_key=["member_id", "book_id"]), source={
        "connection": "lib", "schema": "Library_2"}))

    loans = registry.table("loans")
    assert loans.qualified_name == "Library_2.loans" and loans.warehouse_key == ("member_id", "book_id")
    assert loans.source == "library" and loans.staging_model == "stg_library__loans"


@pytest.mark.parametrize(("table_entry", "message"), [
    (entry("loans"), r"table library\.loans: config\.meta\.tidewater\.primary_key is missing: declare"),
    (entry("loans", primary_key="Member Id"), r"primary_key must be a list of lower-case column names"),
    (entry("loans", primary_key=["id"], histroy=False), r"unknown config\.meta\.tidewater key\(s\) histroy"),
    (entry("loans", primary_key=["id"], renamed=["a"]), r"renamed must map PostgreSQL columns"),
    (entry("loans", primary_key=["id"], dropped="Old Column"), r"dropped must be a list of lower-case column"),
    (entry("Loans", primary_key=["id"]), r"table name 'Loans' must be a lower-case identifier"),
    (entry("loans", primary_key=["id"], history="no"), r"history must be true .* or false .*, got 'no'"),
])
def test_a_wrong_entry_is_refused_naming_the_table_and_the_fix(table_entry, message):
    with pytest.raises(ConfigError, match=message):
        tables.parse(document(table_entry), Path("__sources.yml"))


def test_a_source_without_a_connection_or_a_table_twice_is_refused():
    with pytest.raises(ConfigError, match=r"source library: config\.meta\.tidewater\.connection .* is missing"):
        tables.parse(document(entry("a", primary_key=["id"]), source={"schema": "x"}))
    with pytest.raises(ConfigError, match=r"a table named 'a' is already captured"):
        tables.parse(document(entry("a", primary_key=["id"]), entry("a", primary_key=["id"])))


def test_an_unknown_table_is_named_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"table 'nope' is not in the table registry .* known tables are customers"):
        tables.load().table("nope")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the dbt project's models, to edit the registry of."""
    shutil.copytree(REPO_ROOT / "dbt" / "models", tmp_path / "models")
    return tmp_path / "models"


def add_table(models: Path, table_entry: dict) -> tables.Registry:
    path = models / "staging" / "__sources.yml"
    registry = yaml.safe_load(path.read_text())
    registry["sources"][0]["tables"].append(table_entry)
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    return tables.load(path)


def test_adding_a_table_is_one_registry_entry_then_sync(project):
    registry = add_table(project, entry("gift_cards", primary_key=["gift_card_id"], toasted=["note"],
                                        renamed={"balance": "balance_amount"}))

    drift = dbt_models.check(registry, project)
    assert {path.name for path in drift.missing} == {
        "stg_shop__gift_cards.sql", "int_gift_cards_versioned.sql", "int_gift_cards_current.sql"}
    assert {path.name for path in drift.changed} == {"_stg_shop__models.yml", "_int_shop__models.yml"}

    dbt_models.sync(registry, project)

    assert not dbt_models.check(registry, project)
    assert (project / "staging" / "stg_shop__gift_cards.sql").read_text().splitlines()[1] == \
        "{{ staged_changes('shop', 'gift_cards') }}"
    properties = yaml.safe_load((project / "intermediate" / "_int_shop__models.yml").read_text())
    versioned = next(m for m in properties["models"] if m["name"] == "int_gift_cards_versioned")
    assert versioned["config"]["unique_key"] == ["gift_card_id"]
    assert versioned["data_tests"] == [{"unique": {"arguments": {"column_name": "(gift_card_id, version_number)"}}}]


def test_a_table_without_history_keeps_no_versions_and_its_current_state_as_a_table(project):
    registry = add_table(project, entry("page_views", primary_key=["view_id"], history=False))
    assert not registry.table("page_views").history and registry.table("orders").history

    dbt_models.sync(registry, project)

    assert (project / "intermediate" / "int_page_views_versioned.sql").read_text().splitlines()[1] == \
        "{{ entity_versions('shop', 'page_views') }}"
    models = {m["name"]: m for m in yaml.safe_load((project / "intermediate" / "_int_shop__models.yml").read_text())[
        "models"]}
    assert models["int_page_views_versioned"]["config"] == {"materialized": "view"}
    assert "data_tests" not in models["int_page_views_versioned"]  # a view: nothing kept, nothing to test
    assert models["int_page_views_current"]["config"] == {"materialized": "table"}
    assert models["int_page_views_current"]["columns"] == [{"name": "view_id", "data_tests": ["unique", "not_null"]}]
    assert models["int_orders_versioned"]["config"]["materialized"] == "incremental"
    assert models["int_orders_current"]["config"] == {"materialized": "view"}


def test_a_table_taken_out_of_the_registry_loses_its_generated_models_only(project):
    path = project / "staging" / "__sources.yml"
    registry = yaml.safe_load(path.read_text())
    registry["sources"][0]["tables"] = [t for t in registry["sources"][0]["tables"] if t["name"] != "payments"]
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    (project / "marts").mkdir()
    (project / "marts" / "fct_payments.sql").write_text("select * from {{ ref('int_payments_current') }}\n")

    drift = dbt_models.sync(tables.load(path), project)

    assert {p.name for p in drift.stale} == {"stg_shop__payments.sql", "int_payments_versioned.sql",
                                             "int_payments_current.sql"}
    assert not (project / "staging" / "stg_shop__payments.sql").exists()
    assert (project / "marts" / "fct_payments.sql").exists()  # hand-written models are never touched


def test_sync_refuses_to_overwrite_a_hand_written_model(project):
    (project / "staging" / "stg_shop__gift_cards.sql").write_text("select 1 as gift_card_id\n")
    registry = add_table(project, entry("gift_cards", primary_key=["gift_card_id"]))

    with pytest.raises(FileExistsError, match=r"stg_shop__gift_cards\.sql was not written by `tidewater tables sync`"):
        dbt_models.sync(registry, project)
    assert (project / "staging" / "stg_shop__gift_cards.sql").read_text() == "select 1 as gift_card_id\n"


def test_the_command_checks_the_project(capsys):
    assert tidewater(["tables", "check"]) == 0
    assert "the dbt models of 6 tables follow the registry" in capsys.readouterr().out


def test_no_product_file_names_a_registered_table():
    """The registry and what `tidewater tables sync` writes from it are the only product files that name a table;
    the shop (its migrations, simulator, DAG, marts and their suites) is examples/shop, which is not scanned."""
    registry = tables.load()
    generated = dbt_models.generated()
    # A model of a table, or the table's name as a string literal (a hand-kept list of tables).
    names = re.compile("|".join(rf"\bint_{n}_|\bstg_\w+__{n}\b|[\"']{n}[\"']" for n in registry.names))
    product = [path for folder in ("include/tidewater", "dags", "plugins", "dbt")
               for path in (REPO_ROOT / folder).rglob("*")
               if path.suffix in (".py", ".sql", ".yml", ".json") and not {"target", "dbt_packages"} & set(path.parts)]
    offenders = [str(path.relative_to(REPO_ROOT)) for path in product
                 if path not in generated and path != registry.path and names.search(path.read_text())]

    assert offenders == []
