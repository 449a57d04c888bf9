"""The table registry: which PostgreSQL tables Tidewater captures, and how each one reaches the warehouse.

The registry is dbt's own sources file (``dbt/models/staging/__sources.yml``): one dbt source per captured
PostgreSQL schema, its ``config.meta.tidewater`` naming the Airflow connection of the database (and the
schema, where it is not the source's name), and per table ``config.meta.tidewater``:

  primary_key  the key columns (required: a table without one cannot be versioned)
  toasted      columns PostgreSQL may TOAST: Debezium sends a placeholder when they did not change
  renamed      PostgreSQL column -> warehouse column (every other column keeps its name); after a rename in
               PostgreSQL, `<new name>: <old name>` keeps one warehouse column (newest name first)
  dropped      columns dropped in PostgreSQL: their history stays, null from the drop on
  history      false: current state only (SCD1); the versions are a view computed from the change log when
               read, not a table each build keeps (default true: every version, SCD2, kept)

Each table gets its change log (staging), every version (SCD2) and its current state (tidewater.dbt_models).

Every other part (the connector's include list, the lake's tables, the dbt models, the gate, the
reconciliation, the demo, tests and benchmarks) reads this module; nothing else lists tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tidewater.config import REPO_ROOT, ConfigError

REGISTRY_PATH = REPO_ROOT / "dbt" / "models" / "staging" / "__sources.yml"
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")  # what the warehouse's names and Kafka's topics take unquoted
TABLE_KEYS = frozenset({"primary_key", "toasted", "renamed", "dropped", "history"})
SOURCE_KEYS = frozenset({"connection", "schema"})


@dataclass(frozen=True)
class Table:
    """One captured PostgreSQL table and the names it has downstream."""

    source: str  # dbt source name: stg_<source>__<name>
    connection: str  # Airflow connection id of the PostgreSQL database
    schema: str  # PostgreSQL schema
    name: str  # PostgreSQL table (and the lake's change table)
    primary_key: tuple[str, ...]
    toasted: tuple[str, ...] = ()
    renamed: Mapping[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    history: bool = True  # every version kept (SCD2); False: current state only, versions computed on read

    @property
    def qualified_name(self) -> str:
        """``schema.table``, as Debezium's include list and the publication name it."""
        return f"{self.schema}.{self.name}"

    def topic(self, prefix: str) -> str:
        """The Kafka topic Debezium writes this table's changes to (``<prefix>.<schema>.<table>``)."""
        return f"{prefix}.{self.schema}.{self.name}"

    @property
    def staging_model(self) -> str:
        return f"stg_{self.source}__{self.name}"

    @property
    def versions_model(self) -> str:
        return f"int_{self.name}_versioned"

    @property
    def current_model(self) -> str:
        return f"int_{self.name}_current"

    @property
    def models(self) -> tuple[str, ...]:
        """The dbt models this table gets, upstream first."""
        return (self.staging_model, self.versions_model, self.current_model)

    def warehouse_column(self, column: str) -> str:
        """The warehouse's name of PostgreSQL column `column`."""
        return self.renamed.get(column, column)

    @property
    def warehouse_key(self) -> tuple[str, ...]:
        return tuple(self.warehouse_column(column) for column in self.primary_key)


@dataclass(frozen=True)
class Registry:
    tables: tuple[Table, ...]
    path: Path = REGISTRY_PATH

    def __iter__(self) -> Iterator[Table]:
        return iter(self.tables)

    def __len__(self) -> int:
        return len(self.tables)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(table.name for table in self.tables)

    def table(self, name: str) -> Table:
        """The table `name` (``table`` or ``schema.table``); a clear error for one the registry lacks."""
        for table in self.tables:
            if name in (table.name, table.qualified_name):
                return table
        raise ConfigError(f"table {name!r} is not in the table registry ({self.path}): known tables are "
                          f"{', '.join(self.names)}; add it there to capture it")

    def by_topic(self, topic: str, prefix: str) -> Table | None:
        return next((table for table in self.tables if table.topic(prefix) == topic), None)

    def of_connection(self, connection: str) -> tuple[Table, ...]:
        return tuple(table for table in self.tables if table.connection == connection)


def _fail(path: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {message}")


def _meta(node: Mapping[str, Any], path: Path, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    config = node.get("config") or {}
    meta = (config.get("meta") or {}).get("tidewater") or {}
    if not isinstance(meta, dict):
        raise _fail(path, where, "config.meta.tidewater must be a mapping")
    unknown = set(meta) - allowed
    if unknown:
        raise _fail(path, where, f"unknown config.meta.tidewater key(s) {', '.join(sorted(unknown))}: "
                                 f"the keys are {', '.join(sorted(allowed))}")
    return meta


def _identifiers(value: Any, path: Path, where: str, what: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and IDENTIFIER.match(v) for v in values):
        raise _fail(path, where, f"{what} must be a list of lower-case column names, got {value!r}")
    return tuple(values)


def _table(source: str, connection: str, schema: str, node: Mapping[str, Any], path: Path) -> Table:
    name = node.get("name")
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise _fail(path, f"source {source}", f"table name {name!r} must be a lower-case identifier")
    where = f"table {schema}.{name}"
    meta = _meta(node, path, where, TABLE_KEYS)
    if not meta.get("primary_key"):
        raise _fail(path, where, "config.meta.tidewater.primary_key is missing: declare the table's key "
                                 "columns (a table without a key cannot be versioned), or remove the table")
    renamed = meta.get("renamed") or {}
    if not isinstance(renamed, dict):
        raise _fail(path, where, f"renamed must map PostgreSQL columns to warehouse columns, got {renamed!r}")
    for old, new in renamed.items():
        _identifiers([old, new], path, where, "renamed")
    history = meta.get("history", True)
    if not isinstance(history, bool):
        raise _fail(path, where, f"history must be true (every version kept) or false (current state only), "
                                 f"got {history!r}")
    return Table(source=source, connection=connection, schema=schema, name=name,
                 primary_key=_identifiers(meta["primary_key"], path, where, "primary_key"),
                 toasted=_identifiers(meta.get("toasted") or [], path, where, "toasted"),
                 renamed=dict(renamed), dropped=_identifiers(meta.get("dropped") or [], path, where, "dropped"),
                 history=history)


def parse(document: Mapping[str, Any], path: Path = REGISTRY_PATH) -> Registry:
    """The registry a sources document declares: every source with a ``config.meta.tidewater`` entry.

    Raises ConfigError naming the file, the table and what to fix for an entry that is incomplete or wrong,
    and for a table declared twice (two schemas may hold same-named tables only as different dbt sources
    with different table names downstream, which the lake does not have yet)."""
    tables: list[Table] = []
    for source in document.get("sources") or []:
        name = source.get("name", "?")
        meta = _meta(source, path, f"source {name}", SOURCE_KEYS)
        if not meta:
            continue
        if not meta.get("connection"):
            raise _fail(path, f"source {name}", "config.meta.tidewater.connection (the Airflow connection id "
                                                "of the PostgreSQL database) is missing")
        schema = meta.get("schema", name)
        for table in source.get("tables") or []:
            tables.append(_table(name, meta["connection"], schema, table, path))
    seen: dict[str, Table] = {}
    for table in tables:
        if table.name in seen:
            raise _fail(path, f"table {table.qualified_name}",
                        f"a table named {table.name!r} is already captured ({seen[table.name].qualified_name}): "
                        "the lake holds one change table per name")
        seen[table.name] = table
    if not tables:
        raise ConfigError(f"{path}: no captured tables: add a dbt source with config.meta.tidewater "
                          "(README: Use your own database)")
    return Registry(tuple(tables), path)


def load(path: Path = REGISTRY_PATH) -> Registry:
    """The registry in `path` (dbt's sources file)."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"the table registry {path} cannot be read: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"the table registry {path} is not valid YAML: {error}") from None
    return parse(document or {}, path)


def registry() -> Registry:
    """The project's registry (REGISTRY_PATH), read once per process (per path: a test pointing REGISTRY_PATH at
    a copy gets the copy's, and the project's again once it points back)."""
    return _loaded(REGISTRY_PATH)


@cache
def _loaded(path: Path) -> Registry:
    return load(path)


def reread() -> None:
    """Forgets the registries read so far: the next registry() reads its file again (after it changed)."""
    _loaded.cache_clear()


def add_source(name: str, entry: str, path: Path = REGISTRY_PATH) -> Registry:
    """Appends `entry` (YAML: one item of `sources:`, indented) to the registry, keeping the file's comments;
    refuses a source the file has already, and puts the file back if the result is not a valid registry."""
    before = path.read_text()
    document = yaml.safe_load(before) or {}
    if set(document) - {"version", "sources"}:
        raise ConfigError(f"{path}: only `version:` and `sources:` may be at the top to add a source to it")
    if any(source.get("name") == name for source in document.get("sources") or []):
        raise ConfigError(f"{path}: source {name!r} is there already: edit its tables there (or pass --source "
                          "with another name)")
    path.write_text(before.rstrip("\n") + "\n" + entry)
    try:
        return load(path)
    except ConfigError:
        path.write_text(before)
        raise
