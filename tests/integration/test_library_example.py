"""The library example (examples/library), onboarded only through `tidewater source init` and the registry: after
a workload of inserts, updates, deletes and an added column, the warehouse's current state equals PostgreSQL and
its versions are exactly the states PostgreSQL's rows went through.

Real parts only: the library schema in a new database of the stack's PostgreSQL, a Debezium connector of its own
(slot, topics), the drain into a new lake, dbt on a copy of the project whose registry `source init --write`
extended. PostgreSQL's own record of the states is an audit trigger on each table (test-only, schema `audit`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import duckdb
import psycopg
import pytest
import yaml
from psycopg import sql

from tests.support.connectors import remove_connector
from tests.support.dbt import dbt
from tests.support.lake import drain_once
from tidewater import tables
from tidewater.cdc import connector
from tidewater.config import REPO_ROOT, Settings
from tidewater.lake.commit import LakeError

EXAMPLE = REPO_ROOT / "examples" / "library"
AUDIT = """
CREATE SCHEMA audit;
CREATE SEQUENCE audit.seq;
CREATE FUNCTION audit.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO audit.%I SELECT nextval(''audit.seq''), %L, ($1).*', TG_TABLE_NAME, TG_OP)
        USING CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
    RETURN NULL;
END $$;
"""


def workload():
    spec = importlib.util.spec_from_file_location("library_workload", EXAMPLE / "workload.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass
class Library:
    conninfo: str  # the library database, as its owner (a superuser here: also its DBA)
    settings: Settings  # the connector's: its database, topic prefix, name
    slot: str
    project: Path  # the dbt project copy whose registry has the library
    registry: tables.Registry | None = None

    @property
    def registry_path(self) -> Path:
        return self.project / "models" / "staging" / "__sources.yml"

    def library_tables(self) -> tuple[tables.Table, ...]:
        return tuple(table for table in self.registry if table.schema == "library")


@pytest.fixture
def library(cdc: Settings, scratch_db: str, tmp_path: Path, monkeypatch) -> Iterator[Library]:
    suffix = uuid.uuid4().hex[:8]
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute((EXAMPLE / "schema.sql").read_text())
        conn.execute(AUDIT)
    project = tmp_path / "dbt"
    shutil.copytree(REPO_ROOT / "dbt", project, ignore=shutil.ignore_patterns("target", "logs"))
    dbname = psycopg.conninfo.conninfo_to_dict(scratch_db)["dbname"]
    settings = dataclasses.replace(cdc, shop_db=dbname, cdc_topic_prefix=f"twlib{suffix}", cdc_heartbeat_ms=1000,
                                   cdc_connector=f"tw-library-{suffix}", cdc_slot=f"tw_library_{suffix}",
                                   shop_conn_id="library_db")
    made = Library(scratch_db, settings, settings.cdc_slot, project)
    monkeypatch.setenv("AIRFLOW_CONN_LIBRARY_DB", library_uri(made))  # the registry's connection, in this process
    try:
        yield made
    finally:
        remove_connector(cdc, made.settings.cdc_connector, made.slot, made.settings.cdc_topic_prefix, scratch_db)


def library_uri(library: Library) -> str:
    """The library database as an Airflow connection URI (what AIRFLOW_CONN_LIBRARY_DB holds)."""
    parts = psycopg.conninfo.conninfo_to_dict(library.conninfo)
    return (f"postgresql://{quote(parts['user'], safe='')}:{quote(parts['password'], safe='')}@{parts['host']}:"
            f"{parts['port']}/{parts['dbname']}")


def source_init(library: Library, *args: str) -> subprocess.CompletedProcess:
    return cli(library, "source", "init", "--conn", "library_db", "--schema", "library", *args)


def run_dba_statements(library: Library) -> None:
    """Runs what `source init` asks the DBA to run (the test's database owner is its DBA)."""
    printed = source_init(library).stdout
    if "before the connector is registered again:\n" in printed:
        with psycopg.connect(library.conninfo, autocommit=True) as conn:
            conn.execute(printed.split("before the connector is registered again:\n", 1)[1])


def audit(conn: psycopg.Connection, table: str) -> None:
    """PostgreSQL's record of every state of `table`'s rows from now on, starting with the present ones."""
    conn.execute(sql.SQL("CREATE TABLE audit.{t} AS SELECT 0::bigint AS seq, ''::text AS op, * "
                         "FROM library.{t} WITH NO DATA").format(t=sql.Identifier(table)))
    conn.execute(sql.SQL("INSERT INTO audit.{t} SELECT nextval('audit.seq'), 'SNAPSHOT', * FROM library.{t}").format(
        t=sql.Identifier(table)))
    conn.execute(sql.SQL("CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON library.{} FOR EACH ROW "
                         "EXECUTE FUNCTION audit.record()").format(sql.Identifier(table)))


def wait_for_slot(library: Library) -> None:
    """Until Debezium has every change committed so far to the library's database in Kafka."""
    connector.wait_for_catch_up(library.settings, slot=library.slot, conninfo=library.conninfo)


def drain_and_build(library: Library, lake, group: str, warehouse: str) -> None:
    for table in library.library_tables():
        drain_once(library.settings, lake, table.topic(library.settings.cdc_topic_prefix), group)
    built = dbt("build", "--select", "source:library+", lake=lake, warehouse=warehouse, project=library.project)
    assert built.returncode == 0, built.stdout[-4000:]


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    return [name for (name,) in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", (f"library.{table}",)).fetchall()]


def assert_current_state_equals_postgres(library: Library, warehouse: str) -> None:
    """Every PostgreSQL column of every table, under its warehouse name."""
    with psycopg.connect(library.conninfo) as conn, duckdb.connect(warehouse, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for table in library.library_tables():
            names = columns(conn, table.name)
            source_rows = conn.execute(sql.SQL("SELECT {} FROM library.{} ORDER BY {}").format(
                sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(table.name),
                sql.SQL(", ").join(map(sql.Identifier, table.primary_key)))).fetchall()
            current = con.execute(f"select {', '.join(table.warehouse_column(n) for n in names)} "
                                  f"from {table.current_model} order by {', '.join(table.warehouse_key)}").fetchall()
            assert current == source_rows, f"{table.current_model} differs from library.{table.name}"


def masked(rows: list[tuple], keyed: list[int]) -> list[tuple]:
    """Rows ending in an is-deleted flag, a deleted one's values but its key columns (`keyed`) nulled."""
    return [row if not row[-1] else (*(v if i in keyed else None for i, v in enumerate(row[:-1])), True)
            for row in rows]


def assert_warehouse_equals_postgres(library: Library, warehouse: str) -> None:
    """The current state (as above) and the versions: every state PostgreSQL recorded (audit), in order, is one
    version; a delete's version carries the key only (REPLICA IDENTITY DEFAULT)."""
    assert_current_state_equals_postgres(library, warehouse)
    with psycopg.connect(library.conninfo) as conn, duckdb.connect(warehouse, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for table in library.library_tables():
            names = columns(conn, table.name)
            keyed = [index for index, name in enumerate(names) if name in table.primary_key]

            states = conn.execute(sql.SQL("SELECT {}, op = 'DELETE' FROM audit.{} ORDER BY {}, seq").format(
                sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(table.name),
                sql.SQL(", ").join(map(sql.Identifier, table.primary_key)))).fetchall()
            versions = con.execute(f"select {', '.join(names)}, is_deleted from {table.versions_model} "
                                   f"order by {', '.join(table.primary_key)}, version_number").fetchall()
            assert len(versions) > 5
            assert masked(versions, keyed) == masked(states, keyed), \
                f"{table.versions_model} is not library.{table.name}'s states"


def test_the_library_reaches_the_warehouse_through_the_registry_alone(library, lake, group_id, tmp_path):
    steps, rng = workload(), random.Random(7)
    with psycopg.connect(library.conninfo) as conn:
        steps.seed(conn, rng)

    # The DBA runs what `source init` prints; then `--write` adds the source to the registry and its models.
    run_dba_statements(library)
    source_init(library, "--write")
    library.registry = tables.load(library.registry_path)
    assert {t.name for t in library.library_tables()} == {"members", "books", "loans"}
    assert library.registry.table("loans").primary_key == ("member_id", "book_id")
    assert library.registry.table("books").toasted == ("title", "summary")

    with psycopg.connect(library.conninfo, autocommit=True) as conn:
        for table in ("members", "books", "loans"):
            audit(conn, table)
    config = connector.render_config(library.settings, tables=library.registry)
    assert set(config["table.include.list"].split(",")) == {
        r"library\.members", r"library\.books", r"library\.loans", r"tidewater_cdc\.signals"}
    assert connector.capture(library.settings, library.registry) == []  # new: the initial snapshot has them all
    wait_for_slot(library)  # the snapshot is in Kafka: every later change is streamed

    with psycopg.connect(library.conninfo) as conn:
        steps.churn(conn, rng)
    wait_for_slot(library)
    warehouse = str(tmp_path / "warehouse.duckdb")
    drain_and_build(library, lake, group_id, warehouse)
    assert_warehouse_equals_postgres(library, warehouse)

    # A column added mid-stream reaches the warehouse at the next (incremental) build.
    with psycopg.connect(library.conninfo) as conn:
        conn.execute("ALTER TABLE audit.members ADD COLUMN phone text")
        steps.add_phone_column(conn)
        steps.churn(conn, rng)
    wait_for_slot(library)
    drain_and_build(library, lake, group_id, warehouse)
    assert_warehouse_equals_postgres(library, warehouse)
    with duckdb.connect(warehouse, read_only=True) as con:
        assert con.execute("select count(phone) from int_members_current").fetchone()[0] > 0


REVIEWS = """
CREATE TABLE library.reviews (review_id integer PRIMARY KEY, book_id integer NOT NULL REFERENCES library.books,
                              stars smallint NOT NULL, body text);
INSERT INTO library.reviews SELECT r, 1 + r % 12, 1 + r % 5, 'review ' || r FROM generate_series(1, 300) AS r;
"""


def traffic(conninfo: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Updates and inserts on the captured tables and the new one, in small transactions, until `stop`."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        step = 0
        while not stop.is_set():
            step += 1
            conn.execute("UPDATE library.members SET fee_paid = fee_paid + 0.5 WHERE member_id = %s",
                         (1 + step % 30,))
            conn.execute("UPDATE library.reviews SET stars = 1 + (stars %% 5) WHERE review_id = %s",
                         (1 + (step * 7) % 300,))
            conn.execute("INSERT INTO library.reviews VALUES (%s, 1, 3, 'late review')", (1000 + step,))
            counts["steps"] = step
            time.sleep(0.02)


def cli(library: Library, *args: str) -> subprocess.CompletedProcess:
    settings = library.settings
    env = {**os.environ, "AIRFLOW_CONN_LIBRARY_DB": library_uri(library), "TIDEWATER_SHOP_DB": settings.shop_db,
           "TIDEWATER_CDC_CONNECTOR": settings.cdc_connector, "TIDEWATER_CDC_TOPIC_PREFIX": settings.cdc_topic_prefix,
           "TIDEWATER_CDC_SLOT": settings.cdc_slot, "TIDEWATER_CDC_HEARTBEAT_MS": str(settings.cdc_heartbeat_ms),
           "TIDEWATER_SHOP_CONN_ID": settings.shop_conn_id}
    result = subprocess.run([sys.executable, "-m", "tidewater.cli", *args, "--registry", str(library.registry_path)],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return result


def test_a_table_added_while_traffic_runs_gets_its_rows_and_changes_once(library, lake, group_id, tmp_path):
    with psycopg.connect(library.conninfo) as conn:
        workload().seed(conn, random.Random(3))
    run_dba_statements(library)
    source_init(library, "--write")
    library.registry = tables.load(library.registry_path)
    cli(library, "tables", "capture")
    wait_for_slot(library)
    with psycopg.connect(library.conninfo, autocommit=True) as conn:
        conn.execute(REVIEWS)  # a table the pipeline does not capture yet, with rows

    stop, counts = threading.Event(), {}
    writer = threading.Thread(target=traffic, args=(library.conninfo, stop, counts))
    writer.start()
    try:
        time.sleep(2)
        # One registry entry (what the DBA runs for it first), then one command.
        run_dba_statements(library)
        registry = yaml.safe_load(library.registry_path.read_text())
        library_source = next(s for s in registry["sources"] if s["name"] == "library")
        library_source["tables"].append({"name": "reviews", "config": {"meta": {"tidewater": {
            "primary_key": ["review_id"], "toasted": ["body"], "history": False}}}})  # current state only
        library.registry_path.write_text(yaml.safe_dump(registry, sort_keys=False))
        cli(library, "tables", "sync")
        captured = cli(library, "tables", "capture")
        assert "incremental snapshot of library.reviews" in captured.stdout
        time.sleep(5)  # traffic goes on while Debezium reads the new table in chunks
    finally:
        stop.set()
        writer.join()
    assert counts["steps"] > 50
    library.registry = tables.load(library.registry_path)
    wait_for_slot(library)

    reviews = library.registry.table("reviews")
    topic = reviews.topic(library.settings.cdc_topic_prefix)
    with psycopg.connect(library.conninfo) as conn:
        expected = conn.execute("SELECT count(*) FROM library.reviews").fetchone()[0]
    deadline = time.monotonic() + 120
    while True:  # the incremental snapshot ends a little after the slot caught up
        drain_once(library.settings, lake, topic, group_id)
        imaged = lake.con.execute("select count(distinct review_id) from lake.main.reviews "
                                  "where _op in ('r', 'c', 'u')").fetchone()[0]
        if imaged >= expected or time.monotonic() > deadline:
            break
        time.sleep(2)
    # Every row reached the lake with its whole image (a snapshot row, or a streamed insert or update that
    # superseded it within its chunk's window), the snapshot read each row at most once, and later changes came.
    assert imaged == expected
    assert lake.con.execute("select count(*) from (select review_id from lake.main.reviews where _op = 'r' "
                            "group by review_id having count(*) > 1)").fetchone()[0] == 0
    assert lake.con.execute("select count(*) from lake.main.reviews where _op = 'u'").fetchone()[0] > 0

    warehouse = str(tmp_path / "warehouse.duckdb")
    drain_and_build(library, lake, group_id, warehouse)
    assert_current_state_equals_postgres(library, warehouse)
    with duckdb.connect(warehouse, read_only=True) as con:
        # history: false keeps no versions: they are a view of the change log; the current state is a table.
        assert dict(con.execute("select table_name, table_type from information_schema.tables "
                                "where table_name like 'int_reviews_%'").fetchall()) == {
            "int_reviews_versioned": "VIEW", "int_reviews_current": "BASE TABLE"}
        # A snapshot row restating a streamed insert is no version: no version equals the one before it.
        assert con.execute("select count(*) from (select (book_id, stars, body) = lag((book_id, stars, body)) over "
                           "(partition by review_id order by version_number) as same from int_reviews_versioned) "
                           "where same").fetchone()[0] == 0
        assert con.execute("select count(*) from int_reviews_versioned where _op = 'r'").fetchone()[0] > 200


def test_schema_changes_flow_through_or_stop_the_drain_naming_the_column(library, lake, group_id, tmp_path,
                                                                         monkeypatch):
    with psycopg.connect(library.conninfo) as conn:
        workload().seed(conn, random.Random(5))
    run_dba_statements(library)
    source_init(library, "--write")
    # The drain in this process reads the copy's registry (the project's has no library).
    monkeypatch.setattr(tables, "REGISTRY_PATH", library.registry_path)
    library.registry = tables.registry()
    cli(library, "tables", "capture")
    wait_for_slot(library)
    warehouse = str(tmp_path / "warehouse.duckdb")
    drain_and_build(library, lake, group_id, warehouse)

    # Widened types, varchar(n) → text, NOT NULL dropped: through to the warehouse, values exact.
    with psycopg.connect(library.conninfo) as conn:
        conn.execute("ALTER TABLE library.members ALTER fee_paid TYPE numeric(14,4), ALTER email TYPE text, "
                     "ALTER full_name DROP NOT NULL")
        conn.execute("ALTER TABLE library.books ALTER pages TYPE bigint")
        conn.execute("UPDATE library.members SET fee_paid = 12345.6789, full_name = NULL, email = repeat('e', 300) "
                     "WHERE member_id = 2")
        conn.execute("UPDATE library.books SET pages = 5000000000 WHERE book_id = 3")
    wait_for_slot(library)
    drain_and_build(library, lake, group_id, warehouse)
    assert_current_state_equals_postgres(library, warehouse)
    with duckdb.connect(warehouse, read_only=True) as con:
        assert con.execute("select fee_paid, full_name from int_members_current where member_id = 2").fetchone() \
            == (Decimal("12345.6789"), None)

    # A dropped and a renamed column stop their table's drain until the registry says which.
    with psycopg.connect(library.conninfo) as conn:
        conn.execute("ALTER TABLE library.books DROP COLUMN pages")
        conn.execute("ALTER TABLE library.loans RENAME COLUMN returned_at TO returned_on")
        conn.execute("UPDATE library.books SET title = title || ' (2nd ed.)' WHERE book_id < 4")
        conn.execute("UPDATE library.loans SET returned_on = lent_at + interval '3 days' WHERE book_id = 1")
    wait_for_slot(library)
    books, loans = (library.registry.table(name) for name in ("books", "loans"))
    for table, column in ((books, "pages"), (loans, "returned_at")):
        with pytest.raises(LakeError, match=rf"change table {table.name}: the new records have no column {column} "
                                            r"\(dropped or renamed in PostgreSQL\)\. Nothing was committed"):
            drain_once(library.settings, lake, table.topic(library.settings.cdc_topic_prefix), group_id)

    document = yaml.safe_load(library.registry_path.read_text())
    entries = {t["name"]: t["config"]["meta"]["tidewater"]
               for s in document["sources"] if s["name"] == "library" for t in s["tables"]}
    entries["books"]["dropped"] = ["pages"]
    entries["loans"]["renamed"] = {"returned_on": "returned_at"}
    library.registry_path.write_text(yaml.safe_dump(document, sort_keys=False))
    cli(library, "tables", "sync")
    tables.reread()  # the registry file changed
    library.registry = tables.registry()
    drain_and_build(library, lake, group_id, warehouse)
    assert_current_state_equals_postgres(library, warehouse)
    with duckdb.connect(warehouse, read_only=True) as con:
        history = con.execute("select pages from int_books_versioned where book_id = 3 order by version_number"
                              ).fetchall()
        assert history[-2:] == [(5000000000,), (None,)]  # the dropped column's history stays
