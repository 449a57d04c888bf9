"""``tidewater source init``: a PostgreSQL schema's tables as table-registry entries, and what the DBA must run.

Reads the catalog only (no write, no superuser): per table its primary key (in key order), the columns
PostgreSQL can TOAST (variable-length types stored extended or external: Debezium sends a placeholder for
such a value an update did not change), its replica identity and whether the pipeline's publication has it.
A table without a primary key is refused unless it is skipped or given a key; what the database administrator
must run (publication membership, replica identity, Debezium's SELECT) is printed, never run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from psycopg import sql

from tidewater.config import ConfigError

TABLES_SQL = """
SELECT c.relname,
       c.relreplident::text,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS primary_key,
       coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
                 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND t.typlen = -1 AND a.attstorage IN ('x', 'e')), '{}') AS toastable,
       coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum)
                 FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}') AS columns,
       EXISTS (SELECT FROM pg_publication_tables p
               WHERE p.pubname = %(publication)s AND p.schemaname = n.nspname AND p.tablename = c.relname)
           AS published,
       has_table_privilege(%(role)s, c.oid, 'SELECT') AS readable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""


@dataclass(frozen=True)
class SourceTable:
    name: str
    replica_identity: str  # d default (the key), f full, i index, n nothing
    primary_key: tuple[str, ...]
    toastable: tuple[str, ...]
    columns: tuple[str, ...]
    published: bool
    readable: bool  # by Debezium's role


@dataclass
class Plan:
    """What `source init` found: the registry source entry, and what the DBA must run first."""

    source: str
    schema: str
    connection: str
    tables: list[SourceTable]
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)  # table → the key it is registered with
    skipped: list[str] = field(default_factory=list)
    dba: list[sql.Composable] = field(default_factory=list)

    def entry(self) -> dict[str, Any]:
        """The dbt source, with its config.meta.tidewater, for dbt/models/staging/__sources.yml."""
        meta: dict[str, Any] = {"connection": self.connection}
        if self.schema != self.source:
            meta["schema"] = self.schema
        tables = []
        for table in self.tables:
            if table.name in self.skipped:
                continue
            table_meta: dict[str, Any] = {"primary_key": list(self.keys[table.name])}
            toasted = [column for column in table.toastable if column not in self.keys[table.name]]  # keys always come
            if toasted:
                table_meta["toasted"] = toasted
            tables.append({"name": table.name, "config": {"meta": {"tidewater": table_meta}}})
        return {"name": self.source, "database": "lake", "schema": "main", "loaded_at_field": "_source_ts",
                "config": {"meta": {"tidewater": meta}}, "tables": tables}

    def yaml(self) -> str:
        """The entry as an item of the file's `sources:` list (indented two spaces)."""
        text = yaml.safe_dump([self.entry()], sort_keys=False, allow_unicode=True, width=110,
                              default_flow_style=None)
        return "".join(f"  {line}\n" for line in text.splitlines())


def read_tables(conn: Any, schema: str, publication: str, debezium_role: str) -> list[SourceTable]:
    if not conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (debezium_role,)).fetchone()[0]:
        raise ConfigError(f"role {debezium_role!r} (TIDEWATER_DEBEZIUM_USER, Debezium's login) does not exist in "
                          "this database's server: create it first (LOGIN REPLICATION; docs/tables.md)")
    rows = conn.execute(TABLES_SQL, {"schema": schema, "publication": publication, "role": debezium_role}).fetchall()
    return [SourceTable(name, identity, tuple(key), tuple(toastable), tuple(columns), published, readable)
            for name, identity, key, toastable, columns, published, readable in rows]


def plan(conn: Any, *, schema: str, connection: str, publication: str, debezium_role: str,
         source: str | None = None, skip: Sequence[str] = (), keys: Mapping[str, Sequence[str]] | None = None
         ) -> Plan:
    """The registry entries for `schema`'s tables, refusing (ConfigError) a table with no key unless it is in
    `skip` or `keys`; the statements the DBA must run for the rest."""
    keys = dict(keys or {})
    tables = read_tables(conn, schema, publication, debezium_role)
    if not tables:
        raise ConfigError(f"schema {schema!r} has no tables (or the connection {connection!r} cannot see them: "
                          f"it needs USAGE on the schema)")
    names = {table.name for table in tables}
    unknown = sorted((set(skip) | set(keys)) - names)
    if unknown:
        raise ConfigError(f"schema {schema!r} has no table {', '.join(unknown)}: "
                          f"its tables are {', '.join(sorted(names))}")
    result = Plan(source=source or schema, schema=schema, connection=connection, tables=tables, skipped=list(skip))
    if not conn.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()[0]:
        result.dba.append(sql.SQL("CREATE PUBLICATION {};").format(sql.Identifier(publication)))
    heartbeat, signals = conn.execute("SELECT to_regclass('tidewater_cdc.heartbeat') IS NULL, "
                                      "to_regclass('tidewater_cdc.signals') IS NULL").fetchone()
    pipeline_role = conn.execute("SELECT current_user").fetchone()[0]
    result.dba.extend(_cdc_tables(publication, debezium_role, pipeline_role, heartbeat=heartbeat, signals=signals))
    if not conn.execute("SELECT has_schema_privilege(%s, %s, 'USAGE')", (debezium_role, schema)).fetchone()[0]:
        result.dba.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO {};").format(
            sql.Identifier(schema), sql.Identifier(debezium_role)))
    keyless = []
    for table in tables:
        if table.name in skip:
            continue
        declared = tuple(keys.get(table.name) or table.primary_key)
        missing = [column for column in declared if column not in table.columns]
        if missing:
            raise ConfigError(f"{schema}.{table.name} has no column {', '.join(missing)} (the key given with --key)")
        if not declared:
            keyless.append(table.name)
            continue
        result.keys[table.name] = declared
        result.dba.extend(_dba(schema, table, declared, publication, debezium_role))
    if keyless:
        listed = ", ".join(f"{schema}.{name}" for name in keyless)
        raise ConfigError(
            f"{listed}: no primary key, so Tidewater cannot tell its rows' versions apart. Either give it one "
            f"(ALTER TABLE ... ADD PRIMARY KEY, or --key TABLE=COLUMN[,COLUMN] for unique, non-null columns with "
            f"a unique index Debezium can use as replica identity) or leave it out (--skip TABLE)")
    return result


# Debezium's own tables: columns, what Debezium may do, whether the pipeline's role inserts (signals).
CDC_TABLES = {
    "heartbeat": ("slot_name text PRIMARY KEY, beat_at timestamptz NOT NULL DEFAULT now()", "SELECT, INSERT, UPDATE",
                  False),
    "signals": ("id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048)",
                "SELECT, INSERT, UPDATE, DELETE", True),
}


def _cdc_tables(publication: str, debezium_role: str, pipeline_role: str, *, heartbeat: bool,
                signals: bool) -> list[sql.Composable]:
    """Debezium's own tables, where missing, both in the publication:
    - heartbeat (heartbeat.action.query): its changes move the replication slot while the captured tables are
      quiet (else the slot holds the server's WAL back without bound);
    - signals (signal.data.collection): the pipeline's role inserts `execute-snapshot` signals there to snapshot
      a table added later (`tidewater tables capture`); Debezium writes its snapshot's watermarks."""
    missing = [name for name, absent in (("heartbeat", heartbeat), ("signals", signals)) if absent]
    if not missing:
        return []
    dbz, pipeline, pub = sql.Identifier(debezium_role), sql.Identifier(pipeline_role), sql.Identifier(publication)
    statements = [sql.SQL("CREATE SCHEMA IF NOT EXISTS tidewater_cdc;"),
                  sql.SQL("GRANT USAGE ON SCHEMA tidewater_cdc TO {}, {};").format(dbz, pipeline)]
    for name in missing:
        columns, privileges, pipeline_inserts = CDC_TABLES[name]
        table = sql.Identifier("tidewater_cdc", name)
        statements += [sql.SQL("CREATE TABLE {} (" + columns + ");").format(table),
                       sql.SQL("GRANT " + privileges + " ON {} TO {};").format(table, dbz),
                       sql.SQL("ALTER PUBLICATION {} ADD TABLE {};").format(pub, table)]
        if pipeline_inserts:
            statements.append(sql.SQL("GRANT INSERT ON {} TO {};").format(table, pipeline))
    return statements


def _dba(schema: str, table: SourceTable, key: tuple[str, ...], publication: str,
         debezium_role: str) -> list[sql.Composable]:
    """What the DBA runs so Debezium streams `table` with `key` as its identity."""
    name = sql.Identifier(schema, table.name)
    statements: list[sql.Composable] = []
    if not table.published:
        statements.append(sql.SQL("ALTER PUBLICATION {} ADD TABLE {};").format(sql.Identifier(publication), name))
    if key != table.primary_key or table.replica_identity == "n":
        # Without a primary key as identity, updates and deletes carry no key (or PostgreSQL refuses them on a
        # published table): a unique index on the declared key columns is the identity.
        statements.append(sql.SQL("ALTER TABLE {} REPLICA IDENTITY USING INDEX {};  -- a unique index on ({})").format(
            name, sql.Identifier(f"{table.name}_{'_'.join(key)}_key"), sql.SQL(", ").join(map(sql.Identifier, key))))
    if not table.readable:  # Debezium's snapshot reads the table
        statements.append(sql.SQL("GRANT SELECT ON {} TO {};").format(name, sql.Identifier(debezium_role)))
    return statements
