"""``tidewater``: the platform's command.

  tidewater cdc COMMAND ...  the connector, the topics, the lake, the reconciliation (tidewater.cdc.cli)
  tidewater shop COMMAND ... the demo shop (examples/shop): migrate, seed, run traffic (tidewater_shop.cli)

  tidewater tables list     the registered tables: key, TOASTed columns, renames, topic
  tidewater tables sync     write the dbt models the registry calls for, delete those of removed tables
  tidewater tables check    exit 1 if the dbt models differ from what the registry calls for
  tidewater tables capture [TABLE ...]
                            register the connector for the registry's tables and snapshot the new ones (or
                            TABLE ...) incrementally, while it streams (Debezium's execute-snapshot signal)
  tidewater source init --conn CONN_ID --schema SCHEMA [--source NAME] [--skip TABLE] [--key TABLE=COL[,COL]]
                            [--write]
                            a PostgreSQL schema's tables as registry entries (keys, TOAST-able columns), and
                            the statements its DBA must run (publication, replica identity, grants); --write
                            adds them to the registry and writes their dbt models
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tidewater import dbt_models, tables
from tidewater.config import ConfigError, Settings, get_connection

# Commands with a parser of their own: the capture's, and the demo shop's (examples/shop, installed with the project).
FORWARDED = {"cdc": "tidewater.cdc.cli", "shop": "tidewater_shop.cli"}


def _tables(command: str, path: Path, names: list[str]) -> int:
    registry = tables.load(path)
    models = path.parents[1]
    if command == "capture":
        from tidewater.cdc import connector

        drift = dbt_models.check(registry, models)
        if drift:
            raise ConfigError(f"the dbt models differ from the registry:\n{drift.describe()}\n"
                              "run `tidewater tables sync` first")
        chosen = connector.capture(Settings.from_env(), registry, names or None)
        print(f"[tables] connector registered for {len(registry)} tables; incremental snapshot of "
              f"{', '.join(t.qualified_name for t in chosen) or 'none (the connector captured every table already)'}")
        return 0
    if command == "list":
        prefix = Settings.from_env().cdc_topic_prefix
        for table in registry:
            renamed = ", ".join(f"{old}→{new}" for old, new in table.renamed.items()) or "-"
            print(f"{table.qualified_name}\tkey {','.join(table.primary_key)}\ttoasted {','.join(table.toasted) or '-'}"
                  f"\trenamed {renamed}\ttopic {table.topic(prefix)}\tconnection {table.connection}")
        return 0
    if command == "check":
        drift = dbt_models.check(registry, models)
        if drift:
            print(f"the dbt models differ from the table registry ({registry.path}):\n{drift.describe()}\n"
                  "run `tidewater tables sync`", file=sys.stderr)
            return 1
        print(f"[tables] the dbt models of {len(registry)} tables follow the registry")
        return 0
    drift = dbt_models.sync(registry, models)
    print(f"[tables] {len(registry)} tables; wrote {len(drift.missing) + len(drift.changed)} file(s), "
          f"deleted {len(drift.stale)}" + (f":\n{drift.describe()}" if drift else ""))
    return 0


def _keys(values: list[str]) -> dict[str, list[str]]:
    keys = {}
    for value in values:
        table, sep, columns = value.partition("=")
        if not sep or not table or not columns:
            raise ConfigError(f"--key {value!r}: expected TABLE=COLUMN[,COLUMN...]")
        keys[table] = [column.strip() for column in columns.split(",")]
    return keys


def _source_init(args: argparse.Namespace) -> int:
    import psycopg

    from tidewater.cdc import introspect

    settings = Settings.from_env()
    publication = settings.cdc_publication
    with psycopg.connect(get_connection(args.conn).postgres_conninfo()) as conn:
        conn.read_only = True
        found = introspect.plan(conn, schema=args.schema, connection=args.conn, publication=publication,
                                debezium_role=settings.debezium_user, source=args.source, skip=args.skip,
                                keys=_keys(args.key))
        statements = [statement.as_string(conn) for statement in found.dba]
    print(f"# {len(found.keys)} table(s) of schema {args.schema}" +
          (f", skipped: {', '.join(found.skipped)}" if found.skipped else ""))
    print(found.yaml(), end="")
    if statements:
        print("\n# For the database administrator to run (as the tables' owner or a superuser), before the "
              "connector is registered again:")
        print("\n".join(statements))
    if args.write:
        registry = tables.add_source(found.source, found.yaml(), args.registry)
        drift = dbt_models.sync(registry, args.registry.parents[1])
        print(f"\n[source] added source {found.source} to {registry.path}; wrote "
              f"{len(drift.missing) + len(drift.changed)} dbt model file(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FORWARDED:  # their own parsers, under one command
        from importlib import import_module

        return import_module(FORWARDED[argv[0]]).main(argv[1:])
    parser = argparse.ArgumentParser(prog="tidewater", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="area", required=True)
    commands.add_parser("cdc", help="the connector, topics, lake and reconciliation: tidewater cdc --help")
    commands.add_parser("shop", help="the demo shop: tidewater shop --help")
    table_commands = commands.add_parser("tables", help="the table registry and the dbt models it calls for")
    table_commands.add_argument("command", choices=["list", "sync", "check", "capture"])
    table_commands.add_argument("names", nargs="*", metavar="TABLE", help="capture: the tables to snapshot")
    source_commands = commands.add_parser("source", help="onboard a PostgreSQL schema")
    source_commands.add_argument("command", choices=["init"])
    source_commands.add_argument("--conn", required=True, help="the Airflow connection id of the database")
    source_commands.add_argument("--schema", required=True, help="the PostgreSQL schema")
    source_commands.add_argument("--source", help="the dbt source's name (default: the schema's)")
    source_commands.add_argument("--skip", action="append", default=[], metavar="TABLE", help="leave a table out")
    source_commands.add_argument("--key", action="append", default=[], metavar="TABLE=COL[,COL]",
                                 help="the key of a table without a primary key")
    source_commands.add_argument("--write", action="store_true", help="add the entries to the registry")
    for area in (table_commands, source_commands):
        area.add_argument("--registry", type=Path, default=tables.REGISTRY_PATH,
                          help="the registry file (default: the project's dbt/models/staging/__sources.yml)")
    args = parser.parse_args(argv)
    try:
        if args.area == "source":
            return _source_init(args)
        return _tables(args.command, args.registry, args.names)
    except (ConfigError, FileExistsError) as error:
        print(f"tidewater: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
