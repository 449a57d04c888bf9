"""What the test suite must leave as it found it: the user's deployment (the stack in .stack/).

The suite runs on its own instance (stack/test.env, .stack-test/). Before and after the session it takes this
fingerprint of the deployment, if one is running, and the session fails if they differ. The fingerprint holds
what a test could add or change and a running pipeline does not change on its own: Kafka topics and consumer
groups, Connect connectors, S3 buckets, PostgreSQL databases and roles, Airflow's DAGs (their serialised hash)
and assets.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

from tidewater.config import REPO_ROOT, read_env_file

DEPLOYMENT_ENV = REPO_ROOT / ".stack" / "env"


def deployment_env(test_env: Path) -> dict[str, str] | None:
    """The deployment's settings, or None if there is none apart from the test instance's, or it is stopped
    (its PostgreSQL does not answer)."""
    if not DEPLOYMENT_ENV.exists() or DEPLOYMENT_ENV.resolve() == test_env.resolve():
        return None
    env = read_env_file(DEPLOYMENT_ENV)
    try:
        socket.create_connection((env["TIDEWATER_PG_HOST"], int(env["TIDEWATER_PG_PORT"])), timeout=2).close()
    except OSError:
        return None
    return env


def fingerprint(env: dict[str, str]) -> dict[str, object]:
    """The deployment's state as above; a part that does not answer is recorded as unreachable."""
    parts = {"kafka": _kafka, "connectors": _connectors, "s3": _buckets, "postgres": _postgres, "airflow": _airflow}
    state: dict[str, object] = {}
    for name, read in parts.items():
        try:
            state[name] = read(env)
        except Exception as error:  # a stopped service is a state too; the message says which
            state[name] = f"unreachable: {type(error).__name__}"
    return state


# cdc_drain's watcher (tidewater.assets.cdc_changes) commits no offset: Kafka forgets its group whenever the watcher
# stops (the DAG paused), so the group comes and goes with the pipeline, not with the tests.
WATCH_GROUP = "tidewater-cdc-watch"


def _kafka(env: dict[str, str]) -> dict[str, list[str]]:
    from confluent_kafka.admin import AdminClient

    from tidewater.cdc.access import admin_config

    admin = AdminClient(admin_config(env))
    topics = sorted(admin.list_topics(timeout=10).topics)
    groups = sorted(group.group_id for group in admin.list_consumer_groups(request_timeout=10).result().valid
                    if group.group_id != WATCH_GROUP)
    return {"topics": topics, "groups": groups}


def _connectors(env: dict[str, str]) -> list[str]:
    import requests

    response = requests.get(f"{env['TIDEWATER_CONNECT_URL']}/connectors", timeout=10,
                            auth=(env["TIDEWATER_CONNECT_USER"], env["TIDEWATER_CONNECT_PASSWORD"]))
    response.raise_for_status()
    return sorted(response.json())


def minio_root_client(env: Mapping[str, str]):
    """An S3 client as MinIO's root user: what creates and drops buckets (the pipeline user may not)."""
    import boto3

    return boto3.client("s3", endpoint_url=f"http://{env['TIDEWATER_S3_HOST']}:{env['TIDEWATER_S3_PORT']}",
                        aws_access_key_id=env["TIDEWATER_S3_ACCESS_KEY"],
                        aws_secret_access_key=env["TIDEWATER_S3_SECRET_KEY"],
                        region_name=env["TIDEWATER_S3_REGION"])


def _buckets(env: dict[str, str]) -> list[str]:
    client = minio_root_client(env)
    return sorted(bucket["Name"] for bucket in client.list_buckets()["Buckets"])


def _admin(env: dict[str, str], dbname: str, server: str = "PG"):
    """The superuser's connection to `dbname` on the shop's server (PG) or on Airflow's (AIRFLOW_DB)."""
    import psycopg

    password = "TIDEWATER_PG_SUPERUSER_PASSWORD" if server == "PG" else f"TIDEWATER_{server}_SUPERUSER_PASSWORD"
    return psycopg.connect(host=env["TIDEWATER_PG_HOST"], port=env[f"TIDEWATER_{server}_PORT"],
                           user=env["TIDEWATER_PG_SUPERUSER"], password=env[password],
                           dbname=dbname, connect_timeout=10)


def _postgres(env: dict[str, str]) -> dict[str, list[str]]:
    with _admin(env, "postgres") as conn:
        databases = [row[0] for row in conn.execute("SELECT datname FROM pg_database ORDER BY 1")]
        roles = [row[0] for row in conn.execute("SELECT rolname FROM pg_roles ORDER BY 1")]
    return {"databases": databases, "roles": roles}


def _airflow(env: dict[str, str]) -> dict[str, object]:
    """Each DAG's newest serialised hash and the assets' URIs (empty before `airflow db migrate`)."""
    with _admin(env, env["TIDEWATER_AIRFLOW_DB"], "AIRFLOW_DB") as conn:
        if conn.execute("SELECT to_regclass('public.serialized_dag')").fetchone()[0] is None:
            return {}
        dags = dict(conn.execute("SELECT DISTINCT ON (dag_id) dag_id, dag_hash FROM serialized_dag "
                                 "ORDER BY dag_id, created_at DESC").fetchall())
        assets = [row[0] for row in conn.execute("SELECT uri FROM asset ORDER BY 1")]
    return {"dags": dags, "assets": assets}


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """Human-readable lines for each part that changed."""
    return [f"{name}: before {before.get(name)!r}, after {after.get(name)!r}"
            for name in sorted(before.keys() | after.keys()) if before.get(name) != after.get(name)]
