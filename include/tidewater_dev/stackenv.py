"""Derives the Airflow connections (``AIRFLOW_CONN_*``) and OpenLineage settings (``AIRFLOW__OPENLINEAGE__*``,
tidewater.lineage) from the ``TIDEWATER_*`` settings.

One definition for both deployments: the native stack writes this output into ``.stack/env``; the
docker-compose Airflow image evaluates it in its entrypoint, with the service host names set there.

  python -m tidewater_dev.stackenv            KEY='value' lines (shell-quoted)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from urllib.parse import quote

from tidewater import lineage
from tidewater.cdc import access
from tidewater.config import ConfigError


def _need(env: Mapping[str, str], key: str) -> str:
    try:
        return env[key]
    except KeyError:
        raise SystemExit(f"tidewater_dev.stackenv: {key} is not set (see stack/defaults.env)") from None


def _postgres_uri(env: Mapping[str, str], user_key: str, password_key: str,
                  db_key: str = "TIDEWATER_SHOP_DB") -> str:
    return (
        f"postgresql://{quote(_need(env, user_key), safe='')}:{quote(_need(env, password_key), safe='')}"
        f"@{_need(env, 'TIDEWATER_PG_HOST')}:{_need(env, 'TIDEWATER_PG_PORT')}/{quote(_need(env, db_key), safe='')}"
    )


def _s3_connection(env: Mapping[str, str], endpoint: str, user_key: str, password_key: str) -> str:
    return json.dumps({
        "conn_type": "aws",
        "login": _need(env, user_key),
        "password": _need(env, password_key),
        "extra": {"endpoint_url": endpoint, "region_name": _need(env, "TIDEWATER_S3_REGION")},
    })


def airflow_connections(env: Mapping[str, str]) -> dict[str, str]:
    kafka = f"{_need(env, 'TIDEWATER_KAFKA_HOST')}:{_need(env, 'TIDEWATER_KAFKA_PORT')}"
    s3 = f"http://{_need(env, 'TIDEWATER_S3_HOST')}:{_need(env, 'TIDEWATER_S3_PORT')}"
    connect_host = env.get("TIDEWATER_CONNECT_HOST") or _need(env, "TIDEWATER_KAFKA_HOST")
    # The shop's superuser (migrations, set-up): only where its password is given. Airflow's processes get none
    # (stack/stack.sh airflow_env, docker/services.yaml x-airflow): their tasks use the application role.
    admin = {"AIRFLOW_CONN_SHOP_POSTGRES_ADMIN": _postgres_uri(
        env, "TIDEWATER_PG_SUPERUSER", "TIDEWATER_PG_SUPERUSER_PASSWORD")} if env.get(
        "TIDEWATER_PG_SUPERUSER_PASSWORD") else {}
    return {
        "AIRFLOW_CONN_SHOP_POSTGRES": _postgres_uri(env, "TIDEWATER_SHOP_USER", "TIDEWATER_SHOP_PASSWORD"),
        **admin,
        # DuckLake catalogs (docs/lake.md): the pipeline's writer on both, the mart readers' read-only role.
        "AIRFLOW_CONN_LAKE_CATALOG": _postgres_uri(
            env, "TIDEWATER_LAKE_CATALOG_USER", "TIDEWATER_LAKE_CATALOG_PASSWORD", "TIDEWATER_LAKE_CATALOG_DB"),
        "AIRFLOW_CONN_MARTS_CATALOG": _postgres_uri(
            env, "TIDEWATER_LAKE_CATALOG_USER", "TIDEWATER_LAKE_CATALOG_PASSWORD", "TIDEWATER_MARTS_CATALOG_DB"),
        "AIRFLOW_CONN_MARTS_CATALOG_READER": _postgres_uri(
            env, "TIDEWATER_MARTS_READER_USER", "TIDEWATER_MARTS_READER_PASSWORD", "TIDEWATER_MARTS_CATALOG_DB"),
        # The drain never relies on auto-commit: offsets are committed after the lake has the data. It logs in
        # as the pipeline's Kafka user (tidewater.cdc.access: reads, never writes).
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps({
            "conn_type": "kafka",
            "extra": {"bootstrap.servers": kafka, "group.id": "tidewater-cdc-drain",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      **access.client_config(env, access.PIPELINE)},
        }),
        # cdc_drain's watcher (tidewater.assets.cdc_changes) in the triggerer: waits for records written after it
        # starts and never commits, so it moves no offset anyone reads.
        "AIRFLOW_CONN_KAFKA_CDC_WATCH": json.dumps({
            "conn_type": "kafka",
            "extra": {"bootstrap.servers": kafka, "group.id": "tidewater-cdc-watch",
                      "enable.auto.commit": False, "auto.offset.reset": "latest",
                      **access.client_config(env, access.PIPELINE)},
        }),
        # MinIO's least-privilege users (docker/minio/setup.sh): the pipeline reads and writes the lake bucket,
        # mart readers list and read marts/ only. MinIO's root user is for its setup alone.
        "AIRFLOW_CONN_LAKE_S3": _s3_connection(env, s3, "TIDEWATER_S3_PIPELINE_ACCESS_KEY",
                                               "TIDEWATER_S3_PIPELINE_SECRET_KEY"),
        "AIRFLOW_CONN_MARTS_S3_READER": _s3_connection(env, s3, "TIDEWATER_S3_MARTS_READER_ACCESS_KEY",
                                                       "TIDEWATER_S3_MARTS_READER_SECRET_KEY"),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp",
            "host": _need(env, "TIDEWATER_SMTP_HOST"),
            "port": int(_need(env, "TIDEWATER_SMTP_PORT")),
            "extra": {"disable_tls": True, "disable_ssl": True,
                      "from_email": _need(env, "TIDEWATER_ALERT_EMAIL_FROM")},
        }),
        # Kafka Connect's REST API behind basic auth; it runs beside Kafka natively, docker compose names its own
        # host (TIDEWATER_CONNECT_HOST).
        "AIRFLOW_CONN_KAFKA_CONNECT": json.dumps({
            "conn_type": "http", "host": connect_host, "port": int(_need(env, "TIDEWATER_CONNECT_PORT")),
            "schema": "http", "login": _need(env, "TIDEWATER_CONNECT_USER"),
            "password": _need(env, "TIDEWATER_CONNECT_PASSWORD"),
        }),
        "TIDEWATER_CONNECT_URL": f"http://{connect_host}:{_need(env, 'TIDEWATER_CONNECT_PORT')}",
    }


def main() -> None:
    try:
        derived = airflow_connections(os.environ) | lineage.airflow_settings(os.environ)
    except ConfigError as error:
        raise SystemExit(f"tidewater_dev.stackenv: {error}") from None
    for key, value in derived.items():
        sys.stdout.write(f"{key}={shlex.quote(value)}\n")


if __name__ == "__main__":
    main()
