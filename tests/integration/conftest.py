"""Fixtures for tests that run against the real native stack (started by `make test`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import quote

import duckdb
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from tidewater.cdc import connector
from tidewater.config import Settings
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.lake import Lake, commit
from tidewater.lake.objects import Bucket
from tidewater_dev.airflow_api import AirflowApi
from tidewater_shop import migrate


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


@dataclass
class ScratchLake(Lake):
    """A lake of one test: its own bucket and catalog database. `env` points a subprocess (airflow dags test) at it."""

    env: dict[str, str] = field(default_factory=dict)
    conn_id: str = ""  # an Airflow connection id of its catalog, defined in this process's environment

    def settings(self, base: Settings) -> Settings:
        """`base`, pointed at this lake (for code that runs in the test's process)."""
        return replace(base, lake_bucket=self.bucket.bucket, lake_catalog_conn_id=self.conn_id)

    def changes(self, table: str, where: str = "true") -> pa.Table:
        """The change table's rows (empty if the table does not exist yet)."""
        if commit.table_columns(self.con, table) is None:
            return pa.table({})
        return self.con.execute(f"SELECT * FROM {commit.CHANGES}.{table} WHERE {where}").to_arrow_table()


@contextmanager
def new_lake(settings: Settings) -> Iterator[ScratchLake]:
    """A new, empty lake (a bucket on the stack's MinIO, a catalog database owned by the catalog writer); removed
    afterwards. Nothing of the deployment's lake is touched."""
    from tests.deployment_state import minio_root_client
    from tidewater.config import get_connection
    from tidewater.lake import catalog

    # MinIO's root user creates and drops the test's bucket (test-*: the test instance gives the pipeline user the
    # pipeline's policy on it) and reads what the code under test wrote there as the pipeline user.
    client = minio_root_client(os.environ)
    name = f"test_{uuid.uuid4().hex[:12]}"
    bucket = name.replace("_", "-")
    client.create_bucket(Bucket=bucket)
    writer = get_connection(settings.lake_catalog_conn_id)
    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(writer.login)))
    metadata = replace(writer, schema=name)
    con = duckdb.connect()
    load_extensions(con, "httpfs", "ducklake", "postgres")
    con.execute(s3_secret_sql(get_connection(settings.lake_conn_id)))
    catalog.attach(con, catalog.LAKE, metadata, f"s3://{bucket}/{catalog.DATA_PREFIX[catalog.LAKE]}")
    lake = ScratchLake(con, Bucket(client, bucket), metadata, env={
        "TIDEWATER_LAKE_BUCKET": bucket,
        "TIDEWATER_LAKE_CATALOG_DB": name,
        "AIRFLOW_CONN_LAKE_CATALOG": f"postgresql://{quote(writer.login, safe='')}:"
                                     f"{quote(writer.password or '', safe='')}@{writer.host}:{writer.port}/{name}"})
    lake.conn_id = f"lake_catalog_{name}"
    conn_key = f"AIRFLOW_CONN_{lake.conn_id.upper()}"
    os.environ[conn_key] = lake.env["AIRFLOW_CONN_LAKE_CATALOG"]
    try:
        yield lake
    finally:
        os.environ.pop(conn_key, None)
        con.close()
        lake.bucket.delete(lake.bucket.keys(""))
        client.delete_bucket(Bucket=bucket)
        with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


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
