"""A candidate publication: the marts copied out of the warehouse into their own DuckDB file.

The gate validates the candidate, not the warehouse, and publish moves that very file into place, so what
readers get is exactly what passed. The warehouse is opened once for the copy (callers hold the warehouse
pool's one slot: DuckDB refuses its lock to any second process). Beside the marts, the
candidate's ``gate`` schema keeps the warehouse figures the gate compares them with (reconciliation,
freshness), so a publication also records what it was checked against.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from tidewater.config import ConfigError, Settings
from tidewater.gate.suites import mart_names, source_state_sql
from tidewater.sqltext import literal

MARTS_FILE = "marts.duckdb"


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
    # Read-write, with dbt-duckdb's (default) configuration: where Cosmos ran dbt in this same process
    # (`airflow dags test`), DuckDB then hands out dbt's open database instead of refusing a second one.
    marts = mart_names(settings)
    with duckdb.connect(str(warehouse)) as con:
        missing = sorted(set(marts) - {row[0] for row in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = current_database() and table_schema = 'main'").fetchall()})
        if missing:
            raise ConfigError(f"the warehouse {warehouse} lacks the marts {', '.join(missing)}: run the dbt build")
        con.execute("detach database if exists candidate")
        con.execute(f"attach {literal(target)} as candidate")
        try:
            for table in marts:
                con.execute(f"create table candidate.main.{table} as select * from {table}")
            con.execute("create schema candidate.gate")
            con.execute(f"create table candidate.gate.source_state as {source_state_sql(settings)}")
        finally:
            con.execute("detach candidate")
    return target


def discard_candidate(settings: Settings, publication_id: str) -> None:
    shutil.rmtree(candidates_dir(settings) / publication_id, ignore_errors=True)
