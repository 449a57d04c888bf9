"""Fixtures for tests that run against the real native stack (started by `make test`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from tidewater.airflow_api import AirflowApi
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


@pytest.fixture(scope="session")
def shop_changes(cdc: Settings) -> Settings:
    """Real business traffic in the shop (so every table's topic holds creates, updates, deletes)."""
    from tidewater.shop import simulator

    with psycopg.connect(cdc.shop_conninfo()) as conn:
        customers = conn.execute("SELECT count(*) FROM shop.customers").fetchone()[0]
    if customers < 20:
        simulator.seed_shop(cdc.shop_conninfo(), seed=11, customers=30, products=10, orders=30)
    simulator.run_traffic(cdc.shop_conninfo(), seed=12, rate=2000, duration=0.2)
    return cdc


@contextmanager
def new_bucket(settings: Settings) -> Iterator:
    """A new, empty bucket on the stack's MinIO, as a Lake; removed afterwards."""
    from tidewater import drain
    from tidewater.drain.lake import Lake

    client = drain.open_lake(settings).client
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    lake = Lake(client, bucket)
    try:
        yield lake
    finally:
        lake.delete(lake.keys(""))
        client.delete_bucket(Bucket=bucket)


@pytest.fixture
def lake_bucket(settings: Settings) -> Iterator:
    with new_bucket(settings) as lake:
        yield lake


@pytest.fixture
def group_id() -> str:
    """A consumer group nobody has used: a drain with it starts at the beginning of each topic."""
    return f"test-drain-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def airflow_api(settings: Settings) -> AirflowApi:
    """Airflow's api-server, scheduler, dag-processor and triggerer, running (started if needed; `make test`
    stops them with the stack)."""
    import subprocess

    from tidewater.config import REPO_ROOT

    started = subprocess.run([str(REPO_ROOT / "stack" / "stack.sh"), "airflow-up"], capture_output=True, text=True,
                             timeout=600)
    assert started.returncode == 0, f"stack/stack.sh airflow-up failed:\n{started.stdout}\n{started.stderr}"
    return AirflowApi()
