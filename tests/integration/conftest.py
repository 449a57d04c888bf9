"""Fixtures for tests that run against the real native stack (started by `make test`)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from psycopg import sql

from tests.support.alerts import free_port
from tests.support.kafka import delete_topic
from tests.support.lake import ScratchLake, new_lake
from tidewater.cdc import connector
from tidewater.config import Settings
from tidewater_dev.airflow_api import AirflowApi
from tidewater_dev.mailsink import MaildirHandler
from tidewater_shop import migrate


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    # A test marked `last` changes what the whole test instance does (unpaused DAGs run on their schedules): it
    # runs after every other one, in the order collected.
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def settings() -> Settings:
    settings = Settings.from_env()
    try:
        with psycopg.connect(settings.shop_conninfo(admin=True), connect_timeout=5):
            pass
    except Exception as exc:  # the message must say what to do, whatever the cause
        pytest.fail(f"the stack's test instance is not reachable ({exc}); start it with `make test-stack-up`")
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
    from tidewater_shop import simulator

    with psycopg.connect(cdc.shop_conninfo()) as conn:
        customers = conn.execute("SELECT count(*) FROM shop.customers").fetchone()[0]
    if customers < 20:
        simulator.seed_shop(cdc.shop_conninfo(), seed=11, customers=30, products=10, orders=30)
    simulator.run_traffic(cdc.shop_conninfo(), seed=12, rate=2000, duration=0.2)
    return cdc


@pytest.fixture
def lake(settings: Settings) -> Iterator[ScratchLake]:
    with new_lake(settings) as scratch:
        yield scratch


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


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright (tests.support.browser)."""
    from tests.support.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def scratch_topic(shop_changes):
    """A topic name for this test only (not matched by cdc_drain's pattern); deleted afterwards."""
    topic = f"scratch{uuid.uuid4().hex[:8]}.shop.order_items"
    yield topic
    with contextlib.suppress(Exception):  # never created if the test failed before producing
        delete_topic(shop_changes, topic)


@pytest.fixture
def smtp_server(tmp_path) -> Iterator[tuple[int, Path]]:
    """A real SMTP server on a free port keeping what it receives in a maildir: (port, maildir)."""
    port, maildir = free_port(), tmp_path / "mail"
    controller = Controller(MaildirHandler(maildir), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, maildir
    finally:
        controller.stop()
