"""Reconciliation's pure parts: canonical text forms (DuckDB side), snapshot visibility, LSNs, the email."""

from __future__ import annotations

import hashlib

import duckdb
import pytest

from tests.support.airflow import through_xcom
from tidewater.alerts.messages import reconcile_email
from tidewater.reconcile import canonical
from tidewater.reconcile.source import SourceSnapshot, TableSnapshot, lsn_number


def _duck(pg_type: str, literal: str, special: str | None = None) -> str | None:
    column = canonical.Column("c", pg_type, "c")
    expression = canonical.duck_value(column, "c", "s" if special is not None else None)
    query = f"select {expression} from (select {literal} as c, {special or 'null'}::varchar as s)"
    return duckdb.sql(query).fetchone()[0]


@pytest.mark.parametrize(("pg_type", "literal", "special", "expected"), [
    ("numeric(12,2)", "12.50::decimal(12,2)", None, "12.5"),
    ("numeric(12,2)", "3.00::decimal(12,2)", None, "3"),
    ("numeric(12,2)", "0.00::decimal(12,2)", None, "0"),
    ("numeric(12,2)", "100::decimal(12,2)", None, "100"),
    ("numeric(12,2)", "null::decimal(12,2)", "'NaN'", "NaN"),
    ("numeric(12,2)", "null::decimal(12,2)", "'-Infinity'", "-Infinity"),
    ("numeric", "'123456789012345678901234567890123456789.50'", None, "123456789012345678901234567890123456789.5"),
    ("date", "date '1970-01-11'", None, "10"),
    ("date", "'infinity'::date", None, "infinity"),
    ("timestamp with time zone", "'2026-10-25 02:30:00+02'::timestamptz", None, "1792888200000000"),
    ("timestamp with time zone", "'-infinity'::timestamptz", None, "-infinity"),
    ("character(3)", "'EUR'", None, "EUR"),
    ("boolean", "true", None, "true"),
    ("jsonb", "'{\"a\": 1}'", None, '{"a": 1}'),
    ("text", "null::varchar", None, None),
])
def test_duckdb_gives_each_type_its_canonical_text(pg_type, literal, special, expected):
    assert _duck(pg_type, literal, special) == expected


def test_types_map_to_their_canonical_kind():
    assert [canonical.kind_of(t) for t in ("numeric(12,2)", "numeric", "character(2)", "timestamp with time zone",
                                           "timestamp without time zone", "date", "jsonb", "bigint", "uuid")] == \
        ["numeric", "numeric", "bpchar", "timestamp", "timestamp", "date", "text", "text", "text"]


def test_the_row_hash_is_the_first_60_bits_of_the_escaped_row_texts_md5():
    values = ["'a|b'", "null", "''", "'c\\d'"]
    text = "a\\|b|\\N||c\\\\d"

    hashed = duckdb.sql(f"select {canonical.duck_row_hash(values)}").fetchone()[0]

    assert hashed == int(hashlib.md5(text.encode()).hexdigest()[:15], 16)
    # NULL and '' differ, and so do rows whose texts would run together without escaping.
    assert duckdb.sql(f"select {canonical.duck_row_hash(['null'])} <> {canonical.duck_row_hash([chr(39) * 2])}, "
                      f"{canonical.duck_row_hash(['$$a|$$', chr(39) * 2])} <> "
                      f"{canonical.duck_row_hash([chr(39) * 2, '$$|a$$'])}").fetchone() == (True, True)


def test_a_change_is_visible_when_its_transaction_committed_before_the_snapshot():
    snapshot = SourceSnapshot(run_id="r", taken_at="", lsn="0/1", xmin=100, xmax=105, xip=[100, 103])
    visible = duckdb.sql(f"select _tx_id, {snapshot.visible_sql()} from unnest([null, 99, 100, 102, 103, 104, 105, "
                         f"4294967296 + 102]) as t(_tx_id) order by 1 nulls first").fetchall()
    assert visible == [(None, True), (99, True), (100, False), (102, True), (103, False), (104, True), (105, False),
                       (4294967296 + 102, True)]


def test_a_snapshot_near_xid_wraparound_compares_ids_as_postgres_does():
    snapshot = SourceSnapshot(run_id="r", taken_at="", lsn="0/1", xmin=2**32 + 2, xmax=2**32 + 5, xip=[])
    visible = duckdb.sql(f"select {snapshot.visible_sql()} from unnest([4294967290, 3, 6]) as t(_tx_id)").fetchall()
    assert visible == [(True,), (True,), (False,)]


def test_lsns_read_as_debezium_writes_them():
    assert lsn_number("0/16B3748") == 0x16B3748
    assert lsn_number("16/B374D848") == (0x16 << 32) + 0xB374D848


def test_the_email_names_each_table_that_differs_its_counts_and_example_keys():
    report = {"run_id": "20261202T150000Z-abc", "lsn": "0/1", "snapshot_taken_at": "2026-12-02T15:00:00+00:00",
              "tables": [
                  {"table": "orders", "status": "equal", "missing": 0, "extra": 0, "differing": 0},
                  {"table": "customers", "status": "different", "source_rows": 12, "warehouse_rows": 11,
                   "source_checksum": "5", "warehouse_checksum": "4", "missing": 12, "extra": 0, "differing": 1,
                   "examples": {"missing": ["1", "2"], "differing": ["7"]}, "error": None},
                  {"table": "payments", "status": "error", "missing": 0, "extra": 0, "differing": 0,
                   "error": "LookupError: no column x"}]}

    email = reconcile_email(report, lake_uri="s3://lake/_reconcile/history/x.json")

    assert email.subject == ("[tidewater] RECONCILE differs from PostgreSQL: customers (12 missing, 1 differing), "
                             "payments (not compared)")
    assert "keys 1, 2 and 10 more" in email.html and "keys 7</li>" in email.html
    assert "LookupError: no column x" in email.html and "shop.orders" not in email.html


def test_a_wait_fails_with_what_is_behind_once_the_timeout_has_passed_since_the_snapshot():
    from datetime import datetime

    from tidewater.config import Settings
    from tidewater.reconcile.run import waited_too_long

    settings = Settings(reconcile_timeout_minutes=30)
    state = {"snapshot": {"run_id": "r1", "taken_at": "2026-12-02T15:00:00+00:00"}}
    behind = [f"file{n}" for n in range(7)]

    def at(time: str) -> datetime:
        return datetime.fromisoformat(f"2026-12-02T{time}+00:00")

    assert waited_too_long(settings, state, "x", behind, now=at("15:29:00")) is None
    assert waited_too_long(settings, state, "x", [], now=at("16:00:00")) is None
    assert waited_too_long(settings, state, "the warehouse did not load the lake files", behind,
                           now=at("15:31:00")) == (
        "reconciliation r1: the warehouse did not load the lake files within 30 minutes of the snapshot: "
        "file0; file1; file2; file3; file4 (and 2 more)")


def test_the_warehouse_is_behind_while_a_staging_model_has_not_read_the_lake_up_to_the_snapshot():
    from tidewater.reconcile.compare import models_behind

    loaded = {"stg_shop__orders": 12, "stg_shop__customers": 9, "stg_shop__payments": None}

    assert models_behind(loaded, 9) == ["stg_shop__payments never built"]
    assert models_behind(loaded, 10) == ["stg_shop__customers read up to lake snapshot 9 < 10",
                                         "stg_shop__payments never built"]
    assert models_behind({"stg_shop__orders": 12}, 12) == []


def test_a_snapshot_state_with_checksums_past_64_bits_passes_through_xcom_unchanged():
    # A checksum sums 60-bit row hashes: 17 rows can pass 2^64, the seeded shop's tables do.
    table = TableSnapshot(table="orders", key="order_id", columns=[], rows=5_000, checksum=5_000 * (2**60 - 1),
                          hashes_key="_reconcile/runs/r/source/orders.parquet")
    snapshot = SourceSnapshot(run_id="r", taken_at="2026-12-04T22:15:57+00:00", lsn="0/1A2B3C", xmin=2**40,
                              xmax=2**40 + 7, xip=[2**40 + 3], tables=[table])

    state = through_xcom({"snapshot": snapshot.as_dict(), "watermarks": {"shop.shop.orders": {0: 12}}})

    assert SourceSnapshot.from_dict(state["snapshot"]) == snapshot
