"""``tidewater``: the platform's command.

  tidewater tables list     the registered tables: key, TOASTed columns, renames, topic
  tidewater tables sync     write the dbt models the registry calls for, delete those of removed tables
  tidewater tables check    exit 1 if the dbt models differ from what the registry calls for
"""

from __future__ import annotations

import argparse
import sys

from tidewater import dbt_models, tables
from tidewater.config import ConfigError, Settings


def _tables(command: str) -> int:
    registry = tables.load()
    if command == "list":
        prefix = Settings.from_env().cdc_topic_prefix
        for table in registry:
            renamed = ", ".join(f"{old}→{new}" for old, new in table.renamed.items()) or "-"
            print(f"{table.qualified_name}\tkey {','.join(table.primary_key)}\ttoasted {','.join(table.toasted) or '-'}"
                  f"\trenamed {renamed}\ttopic {table.topic(prefix)}\tconnection {table.connection}")
        return 0
    if command == "check":
        drift = dbt_models.check(registry)
        if drift:
            print(f"the dbt models differ from the table registry ({registry.path}):\n{drift.describe()}\n"
                  "run `tidewater tables sync`", file=sys.stderr)
            return 1
        print(f"[tables] the dbt models of {len(registry)} tables follow the registry")
        return 0
    drift = dbt_models.sync(registry)
    print(f"[tables] {len(registry)} tables; wrote {len(drift.missing) + len(drift.changed)} file(s), "
          f"deleted {len(drift.stale)}" + (f":\n{drift.describe()}" if drift else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidewater", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="area", required=True)
    table_commands = commands.add_parser("tables", help="the table registry and the dbt models it calls for")
    table_commands.add_argument("command", choices=["list", "sync", "check"])
    args = parser.parse_args(argv)
    try:
        return _tables(args.command)
    except (ConfigError, FileExistsError) as error:
        print(f"tidewater: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
