"""`tidewater source init` on a real PostgreSQL schema: keys, TOAST-able columns, refusals, the DBA's statements."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import yaml

from tidewater import dbt_models, tables
from tidewater.config import REPO_ROOT

LIBRARY = """
CREATE SCHEMA library;
CREATE TABLE library.members (member_id bigint PRIMARY KEY, full_name text NOT NULL, joined_on date);
CREATE TABLE library.books (isbn varchar(13) PRIMARY KEY, title text NOT NULL, pages int);
CREATE TABLE library.loans (
    book_isbn varchar(13) NOT NULL, member_id bigint NOT NULL, lent_on date NOT NULL, note text,
    PRIMARY KEY (member_id, book_isbn));
CREATE TABLE library.visits (member_id bigint NOT NULL, visited_at timestamptz NOT NULL, remark text);
CREATE UNIQUE INDEX visits_member_id_visited_at_key ON library.visits (member_id, visited_at);
"""


@pytest.fixture
def library(scratch_db: str) -> dict[str, str]:
    """A database with a library schema; the environment whose Airflow connection `library_db` reaches it."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute(LIBRARY)
    parts = psycopg.conninfo.conninfo_to_dict(scratch_db)
    uri = (f"postgresql://{quote(parts['user'], safe='')}:{quote(parts['password'], safe='')}@{parts['host']}:"
           f"{parts['port']}/{parts['dbname']}")
    return os.environ.copy() | {"AIRFLOW_CONN_LIBRARY_DB": uri}


def init(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tidewater.cli", "source", "init", "--conn", "library_db",
                           "--schema", "library", *args], env=env, capture_output=True, text=True, timeout=120)


def entries(stdout: str) -> dict[str, dict]:
    source = yaml.safe_load("\n".join(line for line in stdout.splitlines() if not line.startswith("#")
                                      and not line.startswith(("ALTER", "GRANT", "CREATE", "[source]"))))[0]
    return {table["name"]: table["config"]["meta"]["tidewater"] for table in source["tables"]}


def test_a_table_without_a_primary_key_is_refused_with_what_to_do(library):
    result = init(library)

    assert result.returncode == 2
    assert "library.visits: no primary key" in result.stderr
    assert "--key TABLE=COLUMN" in result.stderr and "--skip TABLE" in result.stderr


def test_keys_toastable_columns_and_the_dba_statements(library):
    result = init(library, "--skip", "visits")

    assert result.returncode == 0, result.stderr
    found = entries(result.stdout)
    assert set(found) == {"members", "books", "loans"}
    assert found["loans"]["primary_key"] == ["member_id", "book_isbn"]  # the key's own order, not the columns'
    assert found["loans"]["toasted"] == ["note"] and found["members"]["toasted"] == ["full_name"]
    assert found["books"] == {"primary_key": ["isbn"], "toasted": ["title"]}  # a key column is always sent
    statements = result.stdout.split("before the connector is registered again:\n", 1)[1]
    assert 'CREATE PUBLICATION "tidewater_shop";' in statements
    assert 'ALTER PUBLICATION "tidewater_shop" ADD TABLE "library"."loans";' in statements
    assert 'GRANT USAGE ON SCHEMA "library" TO "debezium";' in statements.replace(
        os.environ.get("TIDEWATER_DEBEZIUM_USER", "debezium"), "debezium")
    assert "visits" not in statements


def test_a_declared_key_gets_its_replica_identity_statement(library):
    result = init(library, "--key", "visits=member_id,visited_at")

    assert result.returncode == 0, result.stderr
    assert entries(result.stdout)["visits"]["primary_key"] == ["member_id", "visited_at"]
    assert ('ALTER TABLE "library"."visits" REPLICA IDENTITY USING INDEX "visits_member_id_visited_at_key";'
            in result.stdout)
    assert init(library, "--key", "visits=nope").stderr.strip().endswith(
        "library.visits has no column nope (the key given with --key)")


def test_write_adds_the_source_and_its_models_to_the_registry(library, tmp_path: Path):
    models = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "dbt" / "models", models)
    registry_path = models / "staging" / "__sources.yml"
    comment = registry_path.read_text().splitlines()[2]

    result = init(library, "--skip", "visits", "--write", "--registry", str(registry_path))

    assert result.returncode == 0, result.stderr
    registry = tables.load(registry_path)
    assert registry.table("library.loans").primary_key == ("member_id", "book_isbn")
    assert registry.table("customers").schema == "shop"  # the shop's entries are kept
    assert comment.startswith("#") and comment in registry_path.read_text()  # and the file's comments
    assert not dbt_models.check(registry, models)
    assert (models / "intermediate" / "int_loans_versioned.sql").exists()

    again = init(library, "--skip", "visits", "--write", "--registry", str(registry_path))
    assert again.returncode == 2 and "source 'library' is there already" in again.stderr
