"""The Debezium connector: its config rendered from the template, registered through Connect's REST API.

``shop-postgres.json`` beside this module is the one connector definition; the native stack and
docker-compose both register it with ``tidewater cdc register``. Registration is a PUT of the config,
so running it again updates the connector instead of failing.
"""

from __future__ import annotations

import json
import re
import string
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tidewater.config import ConfigError, Settings, get_connection
from tidewater.sqltext import redact
from tidewater.tables import Registry, Table, registry

TEMPLATE = Path(__file__).with_name("shop-postgres.json")
CONNECT_TIMEOUT_S = 10
SIGNALS = "tidewater_cdc.signals"  # Debezium's signalling table (migration 0005; `tidewater source init` prints it)


class ConnectError(RuntimeError):
    pass


def render_config(settings: Settings, template: Path = TEMPLATE, tables: Registry | None = None) -> dict[str, str]:
    """The connector's config: the template with the settings' values, capturing the tables of `tables`
    (default: the project's registry) in its database (registry connection TIDEWATER_SHOP_CONN_ID)."""
    values = {
        "db_host": settings.cdc_db_host,
        "db_port": settings.cdc_db_port,
        "db_user": settings.debezium_user,
        "db_password": settings.debezium_password,
        "db_name": settings.shop_db,
        "topic_prefix": settings.cdc_topic_prefix,
        "heartbeat_ms": settings.cdc_heartbeat_ms,
        "topic_partitions": settings.cdc_topic_partitions,
        "slot": settings.cdc_slot,
        "publication": settings.cdc_publication,
        # Debezium's include list holds regular expressions: each registered table, matched whole, and the
        # signalling table (signal.data.collection: Debezium reads signals from its changes).
        "table_include_list": ",".join(re.escape(name) for name in (
            *(table.qualified_name for table in (tables or registry()).of_connection(settings.shop_conn_id)),
            SIGNALS)),
    }
    # Every placeholder sits inside a JSON string: a value goes in JSON-escaped, so a quote in a password stays in it.
    escaped = {key: json.dumps(str(value))[1:-1] for key, value in values.items()}
    try:
        text = string.Template(template.read_text()).substitute(escaped)
    except KeyError as exc:
        raise ConnectError(f"{template}: placeholder {exc} has no value") from exc
    return json.loads(text)


def table_topic(settings: Settings, table: str) -> str:
    """The Kafka topic Debezium writes a registered table's changes to (`table`: name or schema.table)."""
    return registry().table(table).topic(settings.cdc_topic_prefix)


def heartbeat_topic(settings: Settings) -> str:
    return f"__debezium-heartbeat.{settings.cdc_topic_prefix}"


@dataclass(frozen=True)
class TaskStatus:
    id: int
    state: str  # RUNNING, PAUSED, FAILED, UNASSIGNED, RESTARTING (Connect's names)
    trace: str | None = None  # Connect's stack trace of a FAILED task


@dataclass(frozen=True)
class ConnectorStatus:
    connector_state: str
    task_states: tuple[str, ...]
    trace: str | None  # the first trace: the connector's, else the first failed task's
    tasks: tuple[TaskStatus, ...] = ()
    connector_trace: str | None = None  # Connect's stack trace of a FAILED connector

    @property
    def is_running(self) -> bool:
        return self.connector_state == "RUNNING" and bool(self.task_states) and all(
            state == "RUNNING" for state in self.task_states
        )


class ConnectorNotFound(ConnectError):
    """Connect answers, but has no connector of that name."""


def _auth(settings: Settings) -> tuple[str, str] | None:
    """Connect's basic-auth login, from the Airflow connection `settings.connect_conn_id` (none: no login)."""
    try:
        conn = get_connection(settings.connect_conn_id)
    except ConfigError:
        return None
    return (conn.login, conn.password or "") if conn.login else None


def _request(settings: Settings, method: str, url: str, **kwargs: Any) -> requests.Response:
    try:
        response = requests.request(method, url, timeout=CONNECT_TIMEOUT_S, auth=_auth(settings), **kwargs)
    except requests.RequestException as exc:
        raise ConnectError(
            f"Kafka Connect does not answer at {url} ({type(exc).__name__}): is the stack up? "
            "(make stack-up; make stack-status)"
        ) from exc
    if response.status_code in (401, 403):
        raise ConnectError(f"Kafka Connect at {settings.connect_url} refused the login (HTTP "
                           f"{response.status_code}): connection {settings.connect_conn_id!r} needs Connect's user and "
                           "password (TIDEWATER_CONNECT_USER, TIDEWATER_CONNECT_PASSWORD; the native stack writes it "
                           "to .stack/env)")
    return response


def _connector_url(settings: Settings, name: str | None = None) -> str:
    return f"{settings.connect_url.rstrip('/')}/connectors/{quote(name or settings.cdc_connector, safe='')}"


def register(settings: Settings, config: dict[str, str] | None = None, name: str | None = None) -> dict[str, Any]:
    """Creates or updates connector `name` (default: the settings' connector) with `config` (default: the
    rendered template)."""
    name = name or settings.cdc_connector
    config = config or render_config(settings)
    response = _request(settings, "PUT", f"{_connector_url(settings, name)}/config", json=config)
    if response.status_code not in (200, 201):  # Connect may echo the config: never its password
        raise ConnectError(f"registering {name} failed: HTTP {response.status_code} "
                           f"{redact(response.text[:500], config.get('database.password'))}")
    return response.json()


def status(settings: Settings, name: str | None = None) -> ConnectorStatus:
    """The connector's and each task's state, as Connect reports them (``GET /connectors/<name>/status``)."""
    name = name or settings.cdc_connector
    response = _request(settings, "GET", f"{_connector_url(settings, name)}/status")
    if response.status_code == 404:
        raise ConnectorNotFound(f"connector {name} is not registered in Kafka Connect at {settings.connect_url}: "
                                "run make cdc-register")
    if response.status_code != 200:
        raise ConnectError(f"Kafka Connect at {settings.connect_url} answered HTTP {response.status_code} for the "
                           f"status of connector {name}: {response.text[:500]}")
    body = response.json()
    tasks = tuple(TaskStatus(int(task["id"]), task["state"], task.get("trace"))
                  for task in sorted(body.get("tasks", []), key=lambda task: int(task["id"])))
    connector_trace = body["connector"].get("trace")
    trace = connector_trace or next((task.trace for task in tasks if task.trace), None)
    return ConnectorStatus(body["connector"]["state"], tuple(task.state for task in tasks), trace, tasks,
                           connector_trace)


def stop(settings: Settings, name: str | None = None, timeout_s: float = 60) -> None:
    """Stops the connector (its tasks shut down, its offsets stay) and waits until Connect reports it STOPPED;
    `resume` starts it again with its config of then."""
    _act(settings, "PUT", "stop", "stopping", name)
    deadline = time.monotonic() + timeout_s
    while (current := status(settings, name)).connector_state != "STOPPED" or current.task_states:
        if time.monotonic() > deadline:
            raise ConnectError(f"connector {name or settings.cdc_connector} not stopped after {timeout_s:.0f} s: "
                               f"{current}")
        time.sleep(0.5)


def pause(settings: Settings, name: str | None = None) -> None:
    _act(settings, "PUT", "pause", "pausing", name)


def resume(settings: Settings, name: str | None = None) -> None:
    _act(settings, "PUT", "resume", "resuming", name)


def restart_task(settings: Settings, task: int, name: str | None = None) -> None:
    _act(settings, "POST", f"tasks/{task}/restart", f"restarting task {task} of", name)


def _act(settings: Settings, method: str, path: str, doing: str, name: str | None) -> None:
    response = _request(settings, method, f"{_connector_url(settings, name)}/{path}")
    if response.status_code not in (200, 202, 204):
        raise ConnectError(f"{doing} {name or settings.cdc_connector} failed: HTTP {response.status_code} "
                           f"{response.text[:500]}")


def wait_until_running(settings: Settings, timeout_s: float = 120, name: str | None = None) -> ConnectorStatus:
    name = name or settings.cdc_connector
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            current = status(settings, name)
        except ConnectError:
            current = None
        if current and current.is_running:
            return current
        if current and "FAILED" in (current.connector_state, *current.task_states):
            raise ConnectError(f"connector {name} FAILED: {(current.trace or '')[:2000]}")
        if time.monotonic() > deadline:
            raise ConnectError(f"connector {name} not running after {timeout_s}s: {current}")
        time.sleep(1)


def captured(settings: Settings, tables: Sequence[Table]) -> list[Table] | None:
    """Which of `tables` the registered connector captures now (its include lists), or None if it is not
    registered."""
    response = _request(settings, "GET", f"{_connector_url(settings)}/config")
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ConnectError(f"Kafka Connect answered HTTP {response.status_code} for the config of "
                           f"{settings.cdc_connector}: {response.text[:300]}")
    config = response.json()
    patterns = [p for p in config.get("table.include.list", "").split(",") if p]
    schemas = [p for p in config.get("schema.include.list", "").split(",") if p]
    return [table for table in tables
            if any(re.fullmatch(p, table.qualified_name) for p in patterns)
            or any(re.fullmatch(p, table.schema) for p in schemas)]


def snapshot_tables(tables: Sequence[Table]) -> list[str]:
    """Asks Debezium for an incremental snapshot of `tables`: one `execute-snapshot` signal per database (the
    tables' registry connection), inserted into its signalling table. Debezium reads the tables in chunks while
    it streams, so the pipeline never stops; returns the signals' ids."""
    import psycopg

    ids = []
    for conn_id in sorted({table.connection for table in tables}):
        collections = [re.escape(table.qualified_name) for table in tables if table.connection == conn_id]
        signal = f"tidewater-{uuid.uuid4().hex}"
        with psycopg.connect(get_connection(conn_id).postgres_conninfo()) as conn:
            conn.execute(f"INSERT INTO {SIGNALS} (id, type, data) VALUES (%s, 'execute-snapshot', %s)",
                         (signal, json.dumps({"data-collections": collections, "type": "incremental"})))
        ids.append(signal)
    return ids


def capture(settings: Settings, tables: Registry | None = None, snapshot: Sequence[str] | None = None) -> list[Table]:
    """Registers the connector for the registry's tables (a config update: Debezium keeps its offsets and
    streams on), then snapshots incrementally the tables named in `snapshot` (default: the tables the connector
    did not capture before, i.e. added to the registry since; none for a new connector, whose initial snapshot
    reads them all). Returns the tables snapshotted."""
    tables = tables or registry()
    mine = tables.of_connection(settings.shop_conn_id)
    before = captured(settings, mine)
    added = [] if before is None else [table for table in mine if table not in before]
    # A running task restarts with a new config some time after Connect stored it: a signal it read before that,
    # with its old include list, would be dropped. Stopped, the connector starts again with the new one.
    if added:
        stop(settings)
    register(settings, render_config(settings, tables=tables))
    if added:
        resume(settings)
    wait_until_running(settings)
    chosen = added if snapshot is None else [tables.table(name) for name in snapshot]
    if chosen:
        snapshot_tables(chosen)
    return chosen


def delete(settings: Settings, name: str | None = None) -> None:
    response = _request(settings, "DELETE", _connector_url(settings, name))
    if response.status_code not in (204, 404):
        raise ConnectError(f"deleting {name or settings.cdc_connector} failed: HTTP {response.status_code}")


def nudge_slot(conn: Any) -> None:
    """Makes one change Debezium streams whatever the captured tables do: a `log` signal (Debezium writes its
    message to its log, nothing else), so the slot moves past every commit before it."""
    conn.execute(f"INSERT INTO {SIGNALS} (id, type, data) VALUES (%s, 'log', %s)",
                 (f"tidewater-nudge-{uuid.uuid4().hex}", json.dumps({"message": "tidewater: moving the slot"})))


def wait_for_catch_up(settings: Settings, timeout_s: float = 120, slot: str | None = None,
                      conninfo: str | None = None) -> None:
    """Waits until Debezium has every change committed so far to the source database (`conninfo`, default the
    shop's) in Kafka.

    Connect confirms a WAL position to the replication slot only after the records before it are flushed
    to Kafka, so once the slot's confirmed_flush_lsn passes the position taken now, every earlier change is
    in its topic. The slot only moves when Debezium sees a change of its publication (other databases' WAL,
    like Airflow's, does not move it), so a nudge (nudge_slot) after taking the position makes one.
    """
    import psycopg

    slot = slot or settings.cdc_slot
    with psycopg.connect(conninfo or settings.shop_conninfo(), autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        nudge_slot(conn)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            caught_up = conn.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                                     "WHERE slot_name = %s", (target, slot)).fetchone()
            if caught_up and caught_up[0]:
                return
            time.sleep(1)
    raise ConnectError(f"Debezium did not confirm WAL position {target} on slot {slot} within {timeout_s:.0f} s: "
                       "check the connector with `make cdc-status` and .stack/logs/connect.log")
