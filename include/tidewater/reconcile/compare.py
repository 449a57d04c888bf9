"""The warehouse side: its rows as of a source snapshot, compared with the source's, table by table.

The state as of the snapshot is computed from the entity's versions model (``int_<table>_versioned``),
not from ``int_<table>_current``: the current state holds every change loaded so far, including changes
after the snapshot; the versions keep each change with its ``_lsn`` and ``_tx_id``. The versions are
used rather than the staging change log so that what is checked is the warehouse's own reading of the
changes (unchanged-TOAST values carried forward, deletes, re-keys). For each key the newest version whose
transaction the snapshot sees is kept unless it is a delete or older than the latest such TRUNCATE
(from staging, where truncates are kept) -- the rule ``current_state`` in dbt/macros/versions.sql applies.

The warehouse has caught up with a lake snapshot once every staging model's latest build read the lake up to
it: dbt appends one row per staging build to ``lake_loads`` (model, snapshot_id, loaded_at), the newest lake
snapshot that build read up to (dbt/macros/changes.sql).

The warehouse file is attached read-only to an in-memory DuckDB. A DuckDB file has one writer process and
refuses it while a reader has the file open, so in Airflow the reading tasks share dbt's pool.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from tidewater.reconcile import canonical
from tidewater.reconcile.source import SourceSnapshot, TableSnapshot
from tidewater.sqltext import identifier, literal
from tidewater.tables import registry

EQUAL, DIFFERENT, ERROR = "equal", "different", "error"
WAREHOUSE = "warehouse"


@dataclass
class TableResult:
    table: str
    status: str
    source_rows: int
    warehouse_rows: int | None = None
    source_checksum: str = ""  # decimal text: the sums exceed JSON's safe integers
    warehouse_checksum: str | None = None
    missing: int = 0  # keys in the source, not in the warehouse
    extra: int = 0  # keys in the warehouse, not in the source
    differing: int = 0  # keys in both, with other values
    examples: dict[str, list[str]] = field(default_factory=dict)  # missing / extra / differing → keys
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _warehouse_columns(con: duckdb.DuckDBPyConnection, model: str) -> set[str]:
    rows = con.execute("select column_name from duckdb_columns() where database_name = ? and table_name = ?",
                       [WAREHOUSE, model]).fetchall()
    return {name for (name,) in rows}


def warehouse_rows_sql(snapshot: SourceSnapshot, source: TableSnapshot, available: set[str]) -> str:
    """DuckDB SQL: (key, row_hash) of the warehouse's rows as of the snapshot; needs the columns `available`."""
    table = registry().table(source.table)
    columns = [canonical.Column(**column) for column in source.columns]
    missing = [c.warehouse_name for c in columns if c.warehouse_name not in available]
    if missing:
        raise LookupError(f"{table.versions_model} has no column {', '.join(missing)} for {table.qualified_name}: "
                          f"rebuild the warehouse, or name the column's warehouse name in {registry().path}")
    values = []
    for column in columns:
        special = column.warehouse_name + canonical.SPECIAL_SUFFIX
        values.append(canonical.duck_value(column, identifier(column.warehouse_name),
                                           identifier(special) if special in available else None))
    key = identifier(table.warehouse_column(source.key))
    visible = f"_lsn <= {snapshot.lsn_number} and {snapshot.visible_sql()}"
    versions = f"{WAREHOUSE}.main.{identifier(table.versions_model)}"
    staging = f"{WAREHOUSE}.main.{identifier(table.staging_model)}"
    return f"""
        with newest as (
            select * from {versions}
            where {visible}
            qualify row_number() over (partition by {key} order by version_number desc) = 1
        )
        select {key}::varchar as key, {canonical.duck_row_hash(values)} as row_hash
        from newest
        where not is_deleted
            and _lsn > coalesce((select max(_lsn) from {staging} where _op = 't' and {visible}), -1)
    """


def compare_table(con: duckdb.DuckDBPyConnection, snapshot: SourceSnapshot, source: TableSnapshot,
                  source_uri: str, max_examples: int) -> TableResult:
    """Counts, checksums and the keys that differ, for one table (`source_uri`: its hashes' Parquet file)."""
    table = registry().table(source.table)
    result = TableResult(table=source.table, status=ERROR, source_rows=source.rows,
                         source_checksum=str(source.checksum))
    try:
        sql = warehouse_rows_sql(snapshot, source, _warehouse_columns(con, table.versions_model))
        con.execute(f"create or replace temp table warehouse_rows as {sql}")
        rows, checksum = con.execute("select count(*), coalesce(sum(row_hash), 0) from warehouse_rows").fetchone()
        result.warehouse_rows, result.warehouse_checksum = rows, str(checksum)
        con.execute("""
            create or replace temp table differences as
            select coalesce(s.key, w.key) as key,
                   case when w.key is null then 'missing' when s.key is null then 'extra' else 'differing' end
                       as kind
            from read_parquet(?) as s
            full outer join warehouse_rows as w on s.key = w.key
            where s.key is null or w.key is null or s.row_hash <> w.row_hash
        """, [source_uri])
        for kind, count, examples in con.execute(f"""
                select kind, count(*), list(key order by len(key), key)[1:{int(max_examples)}]
                from differences group by kind""").fetchall():
            setattr(result, kind, count)
            result.examples[kind] = examples
    except (duckdb.Error, LookupError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    result.status = EQUAL if not (result.missing or result.extra or result.differing) else DIFFERENT
    return result


def open_warehouse(settings: Any, lake_conn: Any) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reads the lake bucket (the source's hashes), with the warehouse file attached
    read-only as `warehouse`."""
    from tidewater.duck import connect_lake

    con = connect_lake(lake_conn)
    con.execute(f"attach {literal(settings.warehouse_path)} as {WAREHOUSE} (read_only)")
    return con


LAKE_LOADS = f"{WAREHOUSE}.main.lake_loads"  # (model, snapshot_id, loaded_at): one row per staging build (dbt)


def loaded_snapshots(con: duckdb.DuckDBPyConnection, staging_models: list[str]) -> dict[str, int | None]:
    """Per staging model, the lake snapshot its latest build read up to (its newest ``lake_loads`` row; None: the
    model was never built)."""
    exists = con.execute("select count(*) from duckdb_tables() where database_name = ? and schema_name = 'main' "
                         "and table_name = 'lake_loads'", [WAREHOUSE]).fetchone()[0]
    loaded: dict[str, int | None] = dict.fromkeys(staging_models)
    if exists:
        loaded |= dict(con.execute(f"select model, arg_max(snapshot_id, loaded_at) from {LAKE_LOADS} "
                                   "where model in (select unnest(?)) group by model", [staging_models]).fetchall())
    return loaded


def models_behind(loaded: dict[str, int | None], snapshot: int) -> list[str]:
    """The staging models that have not read the lake up to `snapshot`, each with where it is."""
    return [f"{model} never built" if at is None else f"{model} read up to lake snapshot {at} < {snapshot}"
            for model, at in sorted(loaded.items()) if at is None or at < snapshot]
