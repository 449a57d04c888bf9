"""`airflow dags test` as a user runs it, in a subprocess."""

from __future__ import annotations

import atexit
import functools
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from tidewater.config import REPO_ROOT

AIRFLOW = str(REPO_ROOT / ".venv" / "bin" / "airflow")
SCRATCH_METADATA_PREFIX = "airflow_scratch_"
_METADATA_URLS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC")


def airflow_dags_test(dag_id: str, conf: dict | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`airflow dags test DAG_ID`. With `env` changing any TIDEWATER_* setting, the run gets Airflow metadata of its
    own (`scratch_metadata`): `dags test` serialises every DAG as parsed in its environment, and on the instance's
    database the running dag-processor and scheduler would re-parse them with the instance's settings meanwhile
    (a scratch bucket's assets deactivated mid-run: AirflowInactiveAssetInInletOrOutletException)."""
    command = [AIRFLOW, "dags", "test", dag_id]
    if conf:
        command += ["-c", json.dumps(conf)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env=os.environ | with_own_metadata(env or {}))


def with_own_metadata(env: dict[str, str]) -> dict[str, str]:
    """`env`, plus the scratch metadata database if it changes a TIDEWATER_* setting."""
    return env | scratch_metadata() if any(name.startswith("TIDEWATER_") for name in env) else env


@functools.cache
def scratch_metadata() -> dict[str, str]:
    """Settings pointing Airflow at a metadata database of this test process alone, on the instance's Airflow
    server: created empty and migrated on first use (about 4 s), dropped when the process exits. No dag-processor or
    scheduler works on it."""
    from sqlalchemy.engine import make_url

    name = f"{SCRATCH_METADATA_PREFIX}{uuid.uuid4().hex[:12]}"
    urls = {key: make_url(os.environ[key]) for key in _METADATA_URLS}
    instance = urls[_METADATA_URLS[0]]
    with _server(instance) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                   sql.Identifier(instance.username)))
    atexit.register(_drop_database, instance, name)
    env = {key: url.set(database=name).render_as_string(hide_password=False) for key, url in urls.items()}
    migrated = subprocess.run([AIRFLOW, "db", "migrate"], capture_output=True, text=True, timeout=300,
                              env=os.environ | env)
    assert migrated.returncode == 0, f"airflow db migrate of {name} failed:\n{migrated.stdout[-3000:]}{migrated.stderr}"
    return env


def _server(instance) -> psycopg.Connection:
    """The instance's Airflow PostgreSQL server, as its superuser."""
    return psycopg.connect(host=instance.host, port=instance.port, dbname="postgres", autocommit=True,
                           user=os.environ["TIDEWATER_PG_SUPERUSER"],
                           password=os.environ["TIDEWATER_AIRFLOW_DB_SUPERUSER_PASSWORD"])


def _drop_database(instance, name: str) -> None:
    with _server(instance) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def metadata_session(env: dict[str, str]) -> Iterator[object]:
    """A SQLAlchemy session on the Airflow metadata a `dags test` with `env` wrote (see `with_own_metadata`)."""
    from airflow.utils.session import create_session
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    url = with_own_metadata(env).get(_METADATA_URLS[0])
    if url is None:
        with create_session() as session:
            yield session
        return
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def through_xcom(value: object) -> object:
    """`value` as the next task reads it after a task returned it: serialised as XCom (serde), framed for the
    supervisor as the task runner sends it (msgpack, whose integers are 64-bit: a larger one is refused there, with
    OverflowError), and read back."""
    import msgspec
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.execution_time.comms import SetXCom, _RequestFrame
    from airflow.sdk.serde import deserialize

    message = SetXCom(key="return_value", value=BaseXCom.serialize_value(value), dag_id="dag", run_id="run",
                      task_id="task")
    frame = _RequestFrame(id=0, body=message.model_dump()).as_bytes()
    body = msgspec.msgpack.decode(bytes(frame[4:]))[1]  # [id, body, ...] (array_like)
    return deserialize(body["value"])
