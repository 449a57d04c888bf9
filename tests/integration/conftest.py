"""Fixtures for tests that run against the real native stack (started by `make test`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tidewater.cdc import connector
from tidewater.config import Settings
from tidewater.shop import migrate


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings.from_env()
    try:
        with psycopg.connect(settings.shop_conninfo(admin=True), connect_timeout=5):
            pass
    except Exception as exc:  # the message must say what to do, whatever the cause
        pytest.fail(f"the native stack is not reachable ({exc}); start it with `make stack-up`")
    return settings


@pytest.fixture(scope="session")
def shop(settings: Settings) -> Settings:
    """The shop database, migrated."""
    migrate.apply(settings.shop_conninfo(admin=True), settings.migration_settings())
    return settings


@pytest.fixture(scope="session")
def cdc(shop: Settings) -> Settings:
    """The Debezium connector, registered and running."""
    connector.register(shop)
    connector.wait_until_running(shop)
    return shop


@pytest.fixture
def scratch_db(settings: Settings) -> Iterator[str]:
    """A new, empty database on the stack's PostgreSQL; yields an owner conninfo for it."""
    name = f"scratch_{uuid.uuid4().hex[:10]}"
    admin = settings.shop_conninfo(admin=True)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
