"""The one place that reads Tidewater's settings from the environment.

Connections use Airflow's own format (``AIRFLOW_CONN_<ID>`` as a URI or as JSON), so the CLIs, the
tests and Airflow tasks read the same definitions: the native stack writes them to ``.stack/env``,
docker-compose sets them on every service.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Connection:
    conn_id: str
    conn_type: str
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = None
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def postgres_conninfo(self) -> str:
        """A libpq connection string for psycopg (psycopg quotes it); libpq settings in the extras (sslmode,
        connect_timeout, ...) go in too, as Airflow's Postgres hook passes them."""
        from psycopg.conninfo import make_conninfo

        libpq = {key: str(value) for key, value in self.extra.items() if key in LIBPQ_EXTRAS}
        return make_conninfo("", host=self.host, port=self.port, user=self.login, password=self.password,
                             dbname=self.schema, **libpq)


# The extras of a Postgres connection that are libpq parameters (the others are Airflow's own).
LIBPQ_EXTRAS = frozenset({"sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "connect_timeout",
                          "application_name", "options", "keepalives", "keepalives_idle", "target_session_attrs"})


def parse_connection(conn_id: str, value: str) -> Connection:
    """An ``AIRFLOW_CONN_*`` value (Airflow's JSON form or its URI form), parsed by Airflow's own Connection."""
    from airflow.sdk import Connection as AirflowConnection

    value = value.strip()
    try:
        if value.startswith("{"):
            conn = AirflowConnection.from_json(value, conn_id=conn_id)
        else:
            if "://" not in value:
                raise ValueError("no scheme")
            conn = AirflowConnection.from_uri(value, conn_id=conn_id)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"connection {conn_id!r}: not an Airflow connection ({exc}): expected JSON or a URI "
                          "like postgresql://user:pw@host:port/db") from None
    return _from_airflow(conn_id, conn)


def _from_airflow(conn_id: str, conn: Any) -> Connection:
    return Connection(conn_id=conn_id, conn_type=conn.conn_type or "", host=conn.host, port=conn.port,
                      login=conn.login, password=conn.password, schema=conn.schema, extra=conn.extra_dejson)


def _airflow_connection(conn_id: str) -> Connection | None:
    """The connection from Airflow's own lookup (metadata DB, secrets backends), inside Airflow only."""
    try:
        from airflow.sdk import Connection as AirflowConnection
    except ImportError:
        return None
    try:
        conn = AirflowConnection.get(conn_id)
    except Exception:  # not in a task context or not defined there: report it as missing below
        return None
    return _from_airflow(conn_id, conn)


def get_connection(conn_id: str, env: Mapping[str, str] | None = None) -> Connection:
    """An Airflow connection: from ``AIRFLOW_CONN_<ID>``, else (in a task) from Airflow itself."""
    use_airflow = env is None
    env = os.environ if env is None else env
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    if key not in env:
        if use_airflow and (conn := _airflow_connection(conn_id)) is not None:
            return conn
        raise ConfigError(
            f"connection {conn_id!r} is not defined: set {key} "
            "(the native stack writes it to .stack/env: run `make stack-up`, then `set -a; . .stack/env`)"
        )
    return parse_connection(conn_id, env[key])


def read_env_file(path: Path) -> dict[str, str]:
    """Reads a shell-style KEY='value' file such as .stack/env."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, raw = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}: expected KEY=value")
        words = shlex.split(raw)
        values[key.strip()] = words[0] if words else ""
    return values


def _number(env: Mapping[str, str], key: str, default: int | float) -> Any:
    """A finite number (whole if the default is an int); NaN and infinities are refused."""
    raw = env.get(key)
    if raw in (None, ""):
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a {'whole ' if kind is int else ''}number") from exc
    if not math.isfinite(value):
        raise ConfigError(f"{key}={raw!r} is not a finite number (NaN and infinity would disable what it limits)")
    return value


def _bounded(env: Mapping[str, str], key: str, default: int | float, *, minimum: float | None = None,
             above: float | None = None, maximum: float | None = None, why: str = "") -> Any:
    """A number from `_number` within bounds: >= minimum, > above, <= maximum; `why` says what a bad value means."""
    value = _number(env, key, default)
    if ((minimum is not None and value < minimum) or (above is not None and value <= above)
            or (maximum is not None and value > maximum)):
        low = f">= {minimum:g}" if minimum is not None else f"> {above:g}" if above is not None else ""
        bounds = " and ".join(part for part in (low, f"<= {maximum:g}" if maximum is not None else "") if part)
        raise ConfigError(f"{key}={env.get(key)!r}: must be {bounds}{f' ({why})' if why else ''}")
    return value


# TIDEWATER_* variables that are not Settings fields: the native stack's and docker compose's own settings
# (stack/defaults.env, .env.example) and the tools'. tests/unit/test_config.py checks every name the repository
# uses is known; a new stack setting goes here as well as in stack/defaults.env.
OTHER_VARIABLES = frozenset({
    "TIDEWATER_AIRFLOW_ADMIN_PASSWORD", "TIDEWATER_AIRFLOW_ADMIN_USER", "TIDEWATER_AIRFLOW_DB",
    "TIDEWATER_AIRFLOW_DB_PASSWORD", "TIDEWATER_AIRFLOW_DB_PORT", "TIDEWATER_AIRFLOW_DB_SUPERUSER_PASSWORD",
    "TIDEWATER_AIRFLOW_DB_USER", "TIDEWATER_AIRFLOW_FERNET_KEY", "TIDEWATER_AIRFLOW_JWT_SECRET",
    "TIDEWATER_AIRFLOW_EXECUTOR",
    "TIDEWATER_AIRFLOW_PORT", "TIDEWATER_AIRFLOW_SECRET_KEY", "TIDEWATER_ALERT_EMAIL_FROM", "TIDEWATER_BIND_ADDRESS",
    "TIDEWATER_CACHE_DIR",
    "TIDEWATER_CELERY_WORKERS", "TIDEWATER_CELERY_WORKER_CONCURRENCY",
    "TIDEWATER_CONNECT_HOST", "TIDEWATER_CONNECT_PASSWORD", "TIDEWATER_CONNECT_PORT",
    "TIDEWATER_CONNECT_USER", "TIDEWATER_DBT_THREADS", "TIDEWATER_JUPYTER_PORT", "TIDEWATER_JUPYTER_TOKEN",
    "TIDEWATER_KAFKA_ADMIN_PASSWORD",
    "TIDEWATER_KAFKA_ADMIN_USER", "TIDEWATER_KAFKA_CONTROLLER_PORT", "TIDEWATER_KAFKA_DEBEZIUM_PASSWORD",
    "TIDEWATER_KAFKA_DEBEZIUM_USER", "TIDEWATER_KAFKA_HOST", "TIDEWATER_KAFKA_PIPELINE_PASSWORD",
    "TIDEWATER_KAFKA_PIPELINE_USER", "TIDEWATER_KAFKA_PORT", "TIDEWATER_KAFKA_READER_PASSWORD",
    "TIDEWATER_KAFKA_READER_USER", "TIDEWATER_KAFKA_SCRATCH_TOPIC_PREFIXES", "TIDEWATER_KAFKA_UI_PASSWORD",
    "TIDEWATER_KAFKA_UI_PORT", "TIDEWATER_KAFKA_UI_USER", "TIDEWATER_LAKE_CATALOG_DB",
    "TIDEWATER_LAKE_SNAPSHOT",  # set by the warehouse DAG for its dbt build (dbt/macros/changes.sql), not by users
    "TIDEWATER_LAKE_CATALOG_PASSWORD", "TIDEWATER_LAKE_CATALOG_USER", "TIDEWATER_MAIL_UI_PASSWORD",
    "TIDEWATER_MAIL_UI_PORT", "TIDEWATER_MAIL_UI_USER", "TIDEWATER_MARTS_CATALOG_DB", "TIDEWATER_MARTS_READER_PASSWORD",
    "TIDEWATER_MARTS_READER_USER", "TIDEWATER_OPENLINEAGE_API_KEY", "TIDEWATER_OPENLINEAGE_FILE",
    "TIDEWATER_OPENLINEAGE_NAMESPACE", "TIDEWATER_OPENLINEAGE_URL", "TIDEWATER_PG_HOST",
    "TIDEWATER_PG_MAX_SLOT_WAL_KEEP_SIZE", "TIDEWATER_PG_PORT",
    "TIDEWATER_DOCS_ASSETS_DIR", "TIDEWATER_PG_SUPERUSER", "TIDEWATER_PG_SUPERUSER_PASSWORD", "TIDEWATER_PROXY_PORT",
    "TIDEWATER_PYTHON", "TIDEWATER_REDIS_PASSWORD", "TIDEWATER_REDIS_PORT",
    "TIDEWATER_S3_ACCESS_KEY", "TIDEWATER_S3_CONSOLE_PORT", "TIDEWATER_S3_HOST", "TIDEWATER_S3_MARTS_READER_ACCESS_KEY",
    "TIDEWATER_S3_MARTS_READER_SECRET_KEY", "TIDEWATER_S3_PIPELINE_ACCESS_KEY", "TIDEWATER_S3_PIPELINE_SCRATCH_BUCKETS",
    "TIDEWATER_S3_PIPELINE_SECRET_KEY", "TIDEWATER_S3_PORT", "TIDEWATER_S3_REGION", "TIDEWATER_S3_SECRET_KEY",
    "TIDEWATER_SIMULATOR_DURATION_S", "TIDEWATER_SIMULATOR_RATE", "TIDEWATER_SIMULATOR_SEED", "TIDEWATER_SMTP_HOST",
    "TIDEWATER_SMTP_PORT", "TIDEWATER_STACK_BROWSER", "TIDEWATER_STACK_DIR", "TIDEWATER_STACK_PROFILE",
    "TIDEWATER_WORKER_NAME",
})
_VARIABLE = re.compile(r"^\s*#?\s*(TIDEWATER_[A-Z0-9_]+)=", re.MULTILINE)


def known_variables() -> frozenset[str]:
    """Every TIDEWATER_* name with a meaning: Settings fields, OTHER_VARIABLES, and (in a checkout) the names in
    stack/defaults.env and .env.example, set or commented out."""
    names = {f"TIDEWATER_{item.name.upper()}" for item in fields(Settings)} | OTHER_VARIABLES
    for path in (REPO_ROOT / "stack" / "defaults.env", REPO_ROOT / ".env.example"):
        if path.is_file():
            names |= set(_VARIABLE.findall(path.read_text()))
    return frozenset(names)


def check_variable_names(env: Mapping[str, str]) -> None:
    """Refuses TIDEWATER_* variables nothing reads (a typo would otherwise silently keep the default)."""
    known = known_variables()
    unknown = sorted(key for key in env if key.startswith("TIDEWATER_") and key not in known)
    if unknown:
        known = sorted(known)
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(hints)}: no Tidewater "
                          "component reads it; the settings are listed in .env.example (fix or unset it)")


def _check(default: Any, *, minimum: float | None = None, above: float | None = None, maximum: float | None = None,
           why: str = "", pg_name: bool = False, url: bool = False, fallback: str = "", suffix: str = "") -> Any:
    """A Settings field's default and how from_env reads its variable: numbers within bounds (`why` says what a
    bad value would mean), a PostgreSQL name, a URL (no trailing /), or another variable's value where unset
    (`fallback`, plus `suffix`)."""
    return field(default=default, metadata={
        "bounds": {"minimum": minimum, "above": above, "maximum": maximum, "why": why}, "pg_name": pg_name,
        "url": url, "fallback": fallback, "suffix": suffix})


def _read(env: Mapping[str, str], key: str, default: Any, meta: Mapping[str, Any]) -> Any:
    """The value of one setting from `env`, checked as its field says (_check); ConfigError names the variable."""
    if meta.get("fallback") and not env.get(key) and env.get(meta["fallback"]):
        if isinstance(default, int):
            return _number(env, meta["fallback"], default)
        default = env[meta["fallback"]].rstrip("/") + meta["suffix"]
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        value = env.get(key) or default
        if meta.get("pg_name") and not re.fullmatch(r"[a-z0-9_]{1,63}", value):
            raise ConfigError(f"{key}={value!r}: use lower-case letters, digits and underscores (at most 63)")
        return value.rstrip("/") if meta.get("url") else value
    return _bounded(env, key, default, **meta.get("bounds", {}))


@dataclass(frozen=True)
class Settings:
    """Tidewater settings; every field has an environment variable (``TIDEWATER_<FIELD>``)."""

    shop_conn_id: str = "shop_postgres"
    shop_admin_conn_id: str = "shop_postgres_admin"
    kafka_conn_id: str = "kafka_default"
    kafka_watch_conn_id: str = "kafka_cdc_watch"  # the cdc_drain watcher's consumer (tidewater.drain.watch)
    lake_conn_id: str = "lake_s3"
    lake_catalog_conn_id: str = "lake_catalog"
    marts_catalog_conn_id: str = "marts_catalog"
    marts_reader_conn_id: str = "marts_catalog_reader"
    marts_reader_s3_conn_id: str = "marts_s3_reader"  # MinIO's reader user: lists and reads marts/ only
    smtp_conn_id: str = "smtp_default"
    connect_conn_id: str = "kafka_connect"  # Kafka Connect's REST API: login and password (basic auth)
    shop_user: str = "shop_app"
    shop_password: str = ""  # no default: generated per installation (stack/envfile.py)
    debezium_user: str = "debezium"
    debezium_password: str = ""
    connect_url: str = "http://127.0.0.1:28083"
    cdc_connector: str = "shop-postgres"
    cdc_topic_prefix: str = "shop"
    cdc_topic_partitions: int = _check(1, minimum=1)
    cdc_heartbeat_ms: int = _check(10_000, above=0, why="0 would turn Debezium's heartbeats off")
    cdc_slot: str = _check("tidewater_shop", pg_name=True)  # the connector's replication slot
    cdc_publication: str = _check("tidewater_shop", pg_name=True)  # the publication it streams (created by the DBA)
    # How Kafka Connect (not this process) reaches the shop database.
    cdc_db_host: str = _check("127.0.0.1", fallback="TIDEWATER_PG_HOST")
    cdc_db_port: int = _check(25432, fallback="TIDEWATER_PG_PORT")
    shop_db: str = "shop"
    lake_bucket: str = "tidewater-lake"
    # warehouse
    dbt_project_dir: str = str(REPO_ROOT / "dbt")
    warehouse_path: str = str(REPO_ROOT / ".stack" / "warehouse" / "warehouse.duckdb")
    warehouse_pool: str = "duckdb_warehouse"
    # reconcile (docs/reconcile.md): how often, how long to wait for the pipeline, example keys per difference
    reconcile_interval_minutes: int = _check(60, above=0)
    reconcile_timeout_minutes: float = _check(30.0, above=0)
    reconcile_max_examples: int = _check(10, above=0)
    # gate and publish
    gx_context_dir: str = str(REPO_ROOT / "great_expectations")
    marts_dir: str = str(REPO_ROOT / ".stack" / "marts")
    # Retention of the published marts' snapshots (tidewater.gate.publish): a publication stays readable (and can be
    # rolled back to) until this long after a newer one replaced it.
    marts_keep_hours: float = _check(168.0, above=0,
                                     why="0 would expire the snapshot a reader has just started reading")
    gate_max_change_age_hours: float = _check(24.0, above=0)
    # The data docs keep each suite's newest this many gate runs, and failed ones for marts_keep_hours
    # (tidewater.gate.context.prune_validations): a gate runs every ~25 s when busy, and the docs cost per run kept.
    gate_keep_runs: int = _check(100, above=0, why="0 would delete the validation results the docs show")
    # The module naming the marts the gate publishes and their suites (tidewater.gate.suites.marts_module).
    gate_marts: str = "tidewater_shop.marts"
    # Where the Airflow UI serves the data docs (plugins/tidewater_docs.py), for links in gate failures.
    # The docs site is a plugin of the api-server: under its URL unless told otherwise.
    docs_url: str = _check("http://127.0.0.1:28080/tidewater-docs", url=True, fallback="AIRFLOW__API__BASE_URL",
                           suffix="/tidewater-docs")
    # cdc_drain
    drain_interval_minutes: int = _check(5, above=0)
    drain_schedule: str = "events"  # events: on new CDC records, the interval as a fallback; interval: only it
    # A drain run first waits this long at most while a warehouse run is running (or about to read the previous
    # drain), so the two take turns on a small machine (0: never wait; tidewater.drain.yield_to_warehouse).
    drain_yield_seconds: int = _check(120, minimum=0)
    # At most this many drain tasks per run, each draining its share of the topic-partitions one after another (each
    # partition in its own commit): a task costs seconds to start, a slice usually well under one. About the task slots
    # the drains should use at once: 2 for one small machine; workers x concurrency under Celery.
    drain_tasks: int = _check(2, above=0, why="0 would drain nothing")
    drain_topic_regex: str = ""  # empty: the registry's table topics (see topic_pattern)
    drain_max_records_per_run: int = _check(2_000_000, above=0, why="0 would drain nothing")
    drain_file_max_rows: int = _check(200_000, above=0)
    drain_file_max_bytes: int = _check(64 * 1024 * 1024, above=0)
    drain_max_bad_share: float = _check(0.05, minimum=0, maximum=1,
                                        why="the share of a slice's records that may be quarantined")
    # lake_maintenance (tidewater.lake.maintenance): when it runs; snapshots younger than lake_keep_hours stay (the
    # warehouse reads every snapshot it has not loaded); unneeded and orphaned files are deleted only once this old.
    lake_maintenance_schedule: str = "@daily"
    lake_keep_hours: float = _check(168.0, above=0, why="0 would expire snapshots the warehouse has not read yet")
    lake_file_min_age_hours: float = _check(1.0, above=0,
                                            why="0 would delete the files of a drain that has not committed yet")
    # alerts (docs/alerts.md): recipients, links, deadlines, freshness limits
    alert_email_to: str = "data-team@tidewater.invalid"  # comma-separated; never a real domain by default
    # The UI alert emails link to: where the api-server says it is, unless told otherwise.
    airflow_url: str = _check("http://127.0.0.1:28080", url=True, fallback="AIRFLOW__API__BASE_URL")
    alert_error_max_lines: int = _check(20, above=0)
    # A cdc_drain run not finished this long after being queued is late.
    drain_deadline_minutes: float = _check(20.0, above=0)
    warehouse_deadline_minutes: float = _check(60.0, above=0)
    # The data_docs DAG's interval: it rebuilds the docs when a gate ran since (off the warehouse's lock, at the lowest
    # CPU priority; a failed gate renders its own pages at once).
    docs_refresh_minutes: float = _check(30.0, above=0)
    freshness_interval_minutes: int = _check(5, above=0)
    freshness_max_mart_age_minutes: int = _check(360, above=0)
    freshness_max_change_age_minutes: int = _check(360, above=0)
    freshness_max_topic_lag: int = _check(100_000, above=0)  # records not yet drained, per topic
    # WAL a replication slot may hold back (pg_current_wal_lsn() - restart_lsn) before freshness_monitor mails;
    # keep it well under the server's max_slot_wal_keep_size (TIDEWATER_PG_MAX_SLOT_WAL_KEEP_SIZE, 4GB).
    max_slot_lag_bytes: int = _check(1024**3, above=0)
    # where a person finds things (the demo's summary)
    s3_console_url: str = _check("http://127.0.0.1:29001", url=True)  # the native stack writes its own
    mail_dir: str = str(REPO_ROOT / ".stack" / "mail")

    @property
    def alert_recipients(self) -> list[str]:
        recipients = [address.strip() for address in self.alert_email_to.split(",") if address.strip()]
        if not recipients or any("@" not in address for address in recipients):
            raise ConfigError(f"TIDEWATER_ALERT_EMAIL_TO={self.alert_email_to!r}: expected comma-separated email "
                              "addresses, e.g. data-team@example.com")
        return recipients

    @property
    def topic_pattern(self) -> re.Pattern[str]:
        """Topics cdc_drain drains: by default those of the registry's tables (tidewater.tables), never the
        heartbeat or Connect's own topics."""
        pattern = self.drain_topic_regex
        if not pattern:
            from tidewater.tables import registry  # not at import: stack/envfile.py reads this module with no yaml

            pattern = "^(?:" + "|".join(re.escape(t.topic(self.cdc_topic_prefix)) for t in registry()) + ")$"
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"TIDEWATER_DRAIN_TOPIC_REGEX={pattern!r} is not a regular expression: {exc}") from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from `env` (default: the process environment), each validated: unknown TIDEWATER_*
        names, numbers that are not finite or outside what they mean, raise ConfigError naming the variable."""
        env = os.environ if env is None else env
        check_variable_names(env)
        return cls(**{item.name: _read(env, f"TIDEWATER_{item.name.upper()}", item.default, item.metadata)
                      for item in fields(cls)})

    def migration_settings(self) -> dict[str, str]:
        """Values the shop's SQL migrations read as ``tidewater.*`` settings; refuses an unset password."""
        for variable, value in (("TIDEWATER_SHOP_PASSWORD", self.shop_password),
                                ("TIDEWATER_DEBEZIUM_PASSWORD", self.debezium_password)):
            if not value:
                raise ConfigError(f"{variable} is not set: the shop's roles need a password (the native stack "
                                  "generates it into .stack/secrets and .stack/env; compose: stack/envfile.py)")
        return {"shop_user": self.shop_user, "shop_password": self.shop_password,
                "debezium_user": self.debezium_user,
                "debezium_password": self.debezium_password}

    def shop_conninfo(self, *, admin: bool = False, env: Mapping[str, str] | None = None) -> str:
        conn_id = self.shop_admin_conn_id if admin else self.shop_conn_id
        return get_connection(conn_id, env).postgres_conninfo()
