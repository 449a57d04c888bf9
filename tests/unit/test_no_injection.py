"""The review's payloads are inert: values that reach SQL text stay data, secrets never reach an error's message,
and every value an alert email shows is escaped. DuckDB runs in memory (it is the product's engine, not a mock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import jinja2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tidewater import sqltext
from tidewater.alerts import messages, sources
from tidewater.cdc import connector
from tidewater.config import Connection, Settings
from tidewater.duck import create_s3_secret, load_extensions, s3_secret_sql
from tidewater.lake import catalog
from tidewater.reconcile import compare
from tidewater.reconcile.source import SOURCE_SCHEMA, SourceSnapshot, TableSnapshot

PASSWORD = "p'a\"ss\\w'' $(touch {pwned}) `touch {pwned}`; --"
MARKUP = "<script>alert('x')</script>&amp;\""


def statement_payload(target) -> str:
    """The review's S3-key payload: a quote ends the literal, `;` starts a statement that writes `target`."""
    return f"run'; COPY (SELECT 1) TO '{target}'; --"


@pytest.fixture
def pwned(tmp_path):
    target = tmp_path / "pwned.csv"
    yield target
    assert not target.exists(), f"an injected statement ran: it wrote {target}"


def test_a_literal_and_an_identifier_give_back_their_text_exactly(pwned):
    con = duckdb.connect()
    text = statement_payload(pwned) + " \\ \" ''"

    assert con.execute(f"SELECT {sqltext.literal(text)}").fetchone() == (text,)
    con.execute(f"CREATE TABLE {sqltext.identifier(text)} (v INTEGER)")
    assert con.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [(text,)]


@pytest.mark.parametrize("quote", [sqltext.literal, sqltext.identifier])
def test_sql_text_refuses_a_nul_character(quote):
    with pytest.raises(ValueError, match="NUL"):
        quote("lake\x00'; DROP TABLE x; --")


def test_an_s3_key_with_a_quote_and_a_statement_is_read_as_a_key(tmp_path, pwned):
    hashes = tmp_path / "reconcile" / "runs" / statement_payload(pwned) / "source" / "orders.parquet"
    hashes.parent.mkdir(parents=True)
    pq.write_table(pa.table({"key": ["1", "2"], "row_hash": [11, 12]}, schema=SOURCE_SCHEMA), hashes)
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS warehouse")
    for model in ("int_orders_versioned", "stg_shop__orders"):
        con.execute(f"CREATE TABLE warehouse.main.{model} (order_id INTEGER, version_number INTEGER, "
                    "is_deleted BOOLEAN, _lsn BIGINT, _tx_id BIGINT, _op VARCHAR)")
    snapshot = SourceSnapshot(run_id="r", taken_at="2026-12-02T00:00:00+00:00", lsn="0/10", xmin=5, xmax=5, xip=[])
    source = TableSnapshot(table="orders", key="order_id", rows=2, checksum=23, hashes_key=str(hashes),
                           columns=[{"name": "order_id", "pg_type": "integer", "warehouse_name": "order_id"}])

    result = compare.compare_table(con, snapshot, source, str(hashes), max_examples=5)

    assert result.error is None
    assert (result.status, result.missing, result.examples["missing"]) == (compare.DIFFERENT, 2, ["1", "2"])


def test_a_table_name_with_quotes_names_that_table_and_nothing_else():
    con = duckdb.connect()
    con.execute(f"ATTACH ':memory:' AS {catalog.LAKE}")
    name = 'orders" WHERE false; DROP TABLE lake.main.sentinel; --'
    at = datetime(2026, 12, 2, 12, tzinfo=UTC)
    con.execute(f"CREATE TABLE lake.main.{sqltext.identifier(name)} (_source_ts TIMESTAMPTZ)")
    con.execute("CREATE TABLE lake.main.sentinel (_source_ts TIMESTAMPTZ)")
    con.execute(f"INSERT INTO lake.main.{sqltext.identifier(name)} VALUES (?)", [at])

    newest, later, _ = sources.read_changes(con, name, cutoff=at + timedelta(minutes=5))

    assert (newest, later) == (at, 0)
    assert sorted(sources.change_tables(con)) == sorted([name, "sentinel"])


def test_an_s3_secret_with_quotes_and_shell_syntax_is_created_as_given(tmp_path):
    key_id = "AK'IA\"; DROP SECRET x; --"
    conn = Connection("lake_s3", "aws", login=key_id, password=PASSWORD.format(pwned=tmp_path / "pwned"),
                      extra={"endpoint_url": "https://minio.example:9000", "region_name": "eu'west"})
    con = duckdb.connect()
    load_extensions(con, "httpfs")

    create_s3_secret(con, conn)

    [(name, described)] = con.execute("SELECT name, secret_string FROM duckdb_secrets()").fetchall()
    assert name == "lake"
    assert f"key_id={key_id};" in described and "region=eu'west;" in described
    assert "endpoint=minio.example:9000;" in described and "use_ssl=true" in described
    assert sqltext.literal(conn.password) in s3_secret_sql(conn)
    assert not (tmp_path / "pwned").exists()


def test_a_password_with_quotes_is_the_connectors_password_and_adds_no_setting(tmp_path):
    password = PASSWORD.format(pwned=tmp_path / "pwned") + '", "database.sslmode": "disable'

    config = connector.render_config(Settings(debezium_password=password))

    assert config["database.password"] == password
    assert "database.sslmode" not in config
    assert not (tmp_path / "pwned").exists()


def test_a_failed_attach_names_neither_the_password_nor_its_quoted_forms(tmp_path):
    password = PASSWORD.format(pwned=tmp_path / "pwned")
    metadata = Connection("lake_catalog", "postgres", host="127.0.0.1", port=1, login="writer", password=password,
                          schema="tidewater_lake")
    con = duckdb.connect()
    load_extensions(con, "ducklake", "postgres")

    with pytest.raises(duckdb.IOException) as raised:  # not a ParserException: the conninfo was one literal
        catalog.attach(con, catalog.LAKE, metadata, "s3://lake/lake/")

    message = str(raised.value)
    assert "127.0.0.1" in message and sqltext.MASK in message
    for form in ("ss\\w", "p'a", "p''a", "p\\'a", "touch"):
        assert form not in message
    assert raised.value.__suppress_context__ and raised.value.__cause__ is None
    assert not (tmp_path / "pwned").exists()


def test_an_error_quoting_a_secret_keeps_its_class_and_loses_every_form_of_the_secret():
    secret = "s'e\\cret"
    con = duckdb.connect()

    with pytest.raises(duckdb.ParserException) as raised, sqltext.redacting(secret, None, ""):
        con.execute(f"CREATE SECRET s (TYPE s3, SECRET {sqltext.literal(secret)} oops)")

    assert "SECRET '***' oops" in str(raised.value)
    assert "cret" not in str(raised.value)


def test_a_conninfo_in_an_error_loses_its_password():
    error = ("Existing DuckLake at metadata catalog \"postgres:host='127.0.0.1' user='w' password='s\\'e cret' "
             "dbname='lake'\" does not exist; also password=plain dbname=x")

    masked = sqltext.mask_passwords(error)

    assert "s\\'e cret" not in masked and "plain" not in masked
    assert "user='w' password=*** dbname='lake'" in masked and "password=*** dbname=x" in masked


def test_the_deadline_email_escapes_every_value_of_the_run():
    email = messages.deadline_email_templates(dag_id="cdc_drain", airflow_url="http://127.0.0.1:28080/")
    context = {"dag_run": {"dag_run_id": f"manual__{MARKUP}", "queued_at": MARKUP, "state": MARKUP},
               "deadline": {"id": "d1", "deadline_time": MARKUP}}

    html = jinja2.Environment(autoescape=False).from_string(email.html).render(**context)  # as Airflow renders

    assert "<script>" not in html and "&amp;amp;" in html
    assert 'href="http://127.0.0.1:28080/dags/cdc_drain/runs/manual__%3Cscript%3E' in html
    assert html.count("&lt;script&gt;") == 4  # run id, deadline, queued at, state; the link is urlencoded


EMAILS = {
    "task failure": lambda v: messages.task_failure_email(dag_id=v, run_id=v, task_id=v, map_index=None,
                                                          try_number=1, error=v, log_url=v, max_lines=None),
    "freshness": lambda v: messages.freshness_email(recovered=False, subject=v, measured=v, limit=v, detail=v,
                                                    since=v),
    "connector down": lambda v: messages.connector_email(recovered=False, connector=v, task=0, state=v, trace=v,
                                                         connect_url=v, max_lines=None, since=v),
    "quarantine": lambda v: messages.quarantine_report_email(
        dag_id=v, run_id=v, run_link=v, prefix_uri=v,
        topics=[messages.QuarantinedTopic(topic=v, records=1, reasons={v: 1}, uris=[v])]),
    "reconcile": lambda v: messages.reconcile_email(
        {"run_id": v, "lsn": v, "snapshot_taken_at": v, "tables": [
            {"table": v, "status": "error", "error": v},
            {"table": v, "status": "different", "source_rows": v, "warehouse_rows": v, "source_checksum": v,
             "warehouse_checksum": v, "missing": 1, "extra": 0, "differing": 0, "examples": {"missing": [v]}}]},
        lake_uri=v),
}


@pytest.mark.parametrize("build", EMAILS.values(), ids=EMAILS.keys())
def test_every_alert_email_escapes_the_values_it_shows(build):
    html = build(MARKUP).html

    assert "<script>" not in html and "&lt;script&gt;" in html
