"""A candidate publication: the marts copied out of the warehouse into their own DuckDB file.

The gate validates the candidate, not the warehouse, and publish moves that very file into place, so what
readers get is exactly what passed. The warehouse is opened once, read-only, for the copy (callers hold
the warehouse pool's one slot: DuckDB refuses its lock to any second process). Beside the marts, the
candidate's ``gate`` schema keeps the warehouse figures the gate compares them with (reconciliation,
freshness), so a publication also records what it was checked against.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tidewater.config import ConfigError, Settings
from tidewater.gate.suites import MARTS, source_state_sql

MARTS_FILE = "marts.duckdb"


def sql_string(value: object) -> str:
    """A SQL string literal (ATTACH and COPY take no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def new_publication_id(now: datetime | None = None) -> str:
    """Sortable by time, unique per run: 20261124T031500123456Z."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def candidates_dir(settings: Settings) -> Path:
    return Path(settings.marts_dir) / "candidates"


def candidate_path(settings: Settings, publication_id: str) -> Path:
    return candidates_dir(settings) / publication_id / MARTS_FILE


def stage_candidate(settings: Settings, publication_id: str) -> Path:
    """Copies every mart and the gate's source figures from the warehouse into a new candidate file."""
    warehouse = Path(settings.warehouse_path)
    if not warehouse.exists():
        raise ConfigError(f"the warehouse {warehouse} does not exist (TIDEWATER_WAREHOUSE_PATH): "
                          "build it first (the warehouse DAG's dbt tasks, or `dbt build` in dbt/)")
    target = candidate_path(settings, publication_id)
    if target.parent.exists():
        shutil.rmtree(target.parent)
    target.parent.mkdir(parents=True)
    with duckdb.connect(str(target)) as con:
        candidate = con.execute("select current_database()").fetchone()[0]
        con.execute(f"attach {sql_string(warehouse)} as warehouse (read_only)")
        missing = sorted(set(MARTS) - {row[0] for row in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = 'warehouse' and table_schema = 'main'").fetchall()})
        if missing:
            raise ConfigError(f"the warehouse {warehouse} lacks the marts {', '.join(missing)}: run the dbt build")
        con.execute("create schema gate")
        con.execute("use warehouse")  # the gate's SQL names warehouse models unqualified, as dbt does
        for table in MARTS:
            con.execute(f"create table {candidate}.main.{table} as select * from {table}")
        con.execute(f"create table {candidate}.gate.source_state as {source_state_sql()}")
        con.execute(f"use {candidate}")
        con.execute("detach warehouse")
    return target


def discard_candidate(settings: Settings, publication_id: str) -> None:
    shutil.rmtree(candidates_dir(settings) / publication_id, ignore_errors=True)
