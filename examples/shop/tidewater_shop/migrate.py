"""Versioned SQL migrations for the shop database.

Files ``migrations/NNNN_<name>.sql`` are applied in order, each in its own transaction, and recorded
in ``public.tidewater_schema_migrations`` with a checksum: re-running applies only what is new, and a
migration edited after it was applied is refused (write a new one instead). Migrations run as a
database owner (creating the replication role needs it); settings they need are passed as
``tidewater.*`` GUCs so no secret is written in SQL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x7469_6465  # advisory lock: one migrator at a time


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lowercase_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return migrations


def apply(
    conninfo: str, settings: dict[str, str], migrations: list[Migration] | None = None
) -> list[Migration]:
    """Applies the migrations not yet recorded; returns those it applied."""
    migrations = discover() if migrations is None else migrations
    applied_now: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS public.tidewater_schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            recorded = dict(
                conn.execute("SELECT version, checksum FROM public.tidewater_schema_migrations").fetchall()
            )
            for migration in migrations:
                if migration.version in recorded:
                    if recorded[migration.version] != migration.checksum:
                        raise MigrationError(
                            f"migration {migration.version:04d}_{migration.name}.sql changed after it was "
                            "applied; restore it and add a new migration for the change"
                        )
                    continue
                with conn.transaction():
                    for key, value in settings.items():
                        conn.execute("SELECT set_config(%s, %s, true)", (f"tidewater.{key}", value))
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO public.tidewater_schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
