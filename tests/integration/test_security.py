"""Authentication on the native stack's ports: forged API tokens and anonymous requests are refused."""

from __future__ import annotations

import os
import time
import uuid

import jwt
import pytest
import requests

# The JWT secret every installation shared before secrets were generated (stack/stack.sh, until issue 15).
OLD_PUBLIC_JWT_SECRET = "tidewater-local-only-jwt-secret"


def admin_token(secret: str) -> str:
    """A token as the api-server issues one for the admin (SimpleAuthManager's claims), signed with `secret`."""
    now = int(time.time())
    claims = {"sub": os.environ["TIDEWATER_AIRFLOW_ADMIN_USER"], "role": "admin", "teams": [],
              "jti": uuid.uuid4().hex, "aud": "apache-airflow", "iat": now, "nbf": now, "exp": now + 600}
    return jwt.encode(claims, secret, algorithm="HS512")


def dags_with(airflow_api, token: str) -> requests.Response:
    return requests.get(f"{airflow_api.base_url}/api/v2/dags", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)


def test_a_jwt_signed_with_the_old_public_secret_is_refused(airflow_api):
    assert os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] != OLD_PUBLIC_JWT_SECRET
    # The same claims signed with this installation's secret are accepted: the forged token is well-formed.
    assert dags_with(airflow_api, admin_token(os.environ["AIRFLOW__API_AUTH__JWT_SECRET"])).status_code == 200

    forged = admin_token(OLD_PUBLIC_JWT_SECRET)

    assert dags_with(airflow_api, forged).status_code in (401, 403)  # Airflow: 403 "Signature verification failed"
    docs = requests.get(f"{airflow_api.base_url}/tidewater-docs/", headers={"Authorization": f"Bearer {forged}"},
                        timeout=30)
    assert docs.status_code in (401, 403)


@pytest.mark.parametrize("path", ["/api/v2/dags", "/api/v2/connections", "/api/v2/config", "/tidewater-docs/"])
def test_anonymous_requests_to_the_airflow_api_are_refused(airflow_api, path):
    response = requests.get(f"{airflow_api.base_url}{path}", timeout=30)

    assert response.status_code in (401, 403), (path, response.status_code, response.text[:200])


def test_anonymous_requests_to_minio_are_refused(settings):
    s3 = f"http://{os.environ['TIDEWATER_S3_HOST']}:{os.environ['TIDEWATER_S3_PORT']}"
    console = f"http://{os.environ['TIDEWATER_S3_HOST']}:{os.environ['TIDEWATER_S3_CONSOLE_PORT']}"

    listing = requests.get(f"{s3}/{settings.lake_bucket}?list-type=2", timeout=30)
    buckets = requests.get(f"{console}/api/v1/buckets", timeout=30)

    assert listing.status_code == 403 and "AccessDenied" in listing.text
    assert buckets.status_code in (401, 403), buckets.status_code


def test_kafka_connects_rest_api_wants_its_login(cdc):
    """Anonymous requests and a wrong password are refused (401); the login of connection kafka_connect works."""
    from tidewater.cdc import connector
    from tidewater.config import get_connection

    settings = cdc
    login = get_connection(settings.connect_conn_id)
    url = f"{settings.connect_url}/connectors"

    anonymous = requests.get(url, timeout=30)
    wrong = requests.get(url, auth=(login.login, "not-the-password"), timeout=30)
    right = requests.get(url, auth=(login.login, login.password), timeout=30)

    assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert settings.cdc_connector in right.json()
    assert connector.status(settings).connector_state == "RUNNING"  # what the pipeline itself sends has the login


def _kafka_client(kind, config: dict):
    from confluent_kafka import Consumer, Producer

    base = {"bootstrap.servers": f"{os.environ['TIDEWATER_KAFKA_HOST']}:{os.environ['TIDEWATER_KAFKA_PORT']}"}
    if kind == "consumer":
        return Consumer(base | {"group.id": f"test-security-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                                "enable.auto.commit": False} | config)
    return Producer(base | {"message.timeout.ms": 10_000} | config)


def _delivery(producer, topic: str):
    """The error of producing one record to `topic` (None: it was written)."""
    errors = []
    producer.produce(topic, value=b"{}", on_delivery=lambda error, _message: errors.append(error))
    producer.flush(20)
    return errors[0] if errors else "no delivery report"


def test_kafka_wants_a_login_and_gives_each_client_only_its_acls(cdc):
    """Anonymous and wrong logins are refused; the pipeline reads change topics but writes none and never sees
    Connect's configs (the Debezium password); Debezium (the running connector) writes them; the reader reads."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    from tidewater.cdc import access
    from tidewater.cdc.connector import table_topic

    env = os.environ
    topic = table_topic(cdc, "customers")
    pipeline = access.client_config(env, access.PIPELINE)
    reader = access.client_config(env, access.READER)

    with pytest.raises(KafkaException):
        _kafka_client("consumer", {"socket.timeout.ms": 5000}).list_topics(timeout=5)
    refusals = []
    wrong = _kafka_client("consumer", pipeline | {"sasl.password": "not-the-password", "log_level": 0,
                                                  "error_cb": refusals.append})
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=10)
    wrong.poll(1)  # serves the error callbacks
    assert KafkaError._AUTHENTICATION in {error.code() for error in refusals}, refusals

    seen = _kafka_client("consumer", pipeline).list_topics(timeout=10).topics
    admin_sees = _kafka_client("consumer", access.admin_config(env)).list_topics(timeout=10).topics
    assert topic in seen and "_connect-configs" in admin_sees and "_connect-configs" not in seen
    consumer = _kafka_client("consumer", pipeline)
    consumer.subscribe([topic])
    record = next(m for m in iter(lambda: consumer.poll(1), "never") if m is not None)
    consumer.close()
    assert record.error() is None and record.value()  # the pipeline reads a change ...
    assert "AUTHORIZATION" in str(_delivery(_kafka_client("producer", pipeline), topic))  # ... and cannot forge one
    assert "AUTHORIZATION" in str(_delivery(_kafka_client("producer", reader), topic))
    assert topic in _kafka_client("consumer", reader).list_topics(timeout=10).topics
    scratch = f"test-security-{uuid.uuid4().hex[:6]}"
    assert _delivery(_kafka_client("producer", access.admin_config(env)), scratch) is None  # the admin may
    admin = AdminClient(access.admin_config(env))  # kept alive until its future resolves
    admin.delete_topics([scratch])[scratch].result()


def s3_as(conn_id: str):
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def test_the_pipeline_and_the_mart_readers_use_minios_least_privilege_users(settings):
    from botocore.exceptions import ClientError

    from tests.deployment_state import minio_root_client
    from tidewater.config import get_connection

    root, root_client = os.environ["TIDEWATER_S3_ACCESS_KEY"], minio_root_client(os.environ)
    pipeline, reader = s3_as(settings.lake_conn_id), s3_as(settings.marts_reader_s3_conn_id)
    users = {get_connection(conn_id).login for conn_id in (settings.lake_conn_id, settings.marts_reader_s3_conn_id)}
    assert root not in users and len(users) == 2
    probe = f"probe/{uuid.uuid4().hex}.txt"

    pipeline.put_object(Bucket=settings.lake_bucket, Key=probe, Body=b"x")  # the lake: read and write
    try:
        assert pipeline.get_object(Bucket=settings.lake_bucket, Key=probe)["Body"].read() == b"x"
        with pytest.raises(ClientError, match="AccessDenied"):
            pipeline.create_bucket(Bucket=f"not-the-lake-{uuid.uuid4().hex[:8]}")
        # Another bucket (root's): the pipeline can neither read it nor write to it.
        other = f"not-the-lake-{uuid.uuid4().hex[:8]}"
        root_client.create_bucket(Bucket=other)
        root_client.put_object(Bucket=other, Key="secret.txt", Body=b"x")
        try:
            with pytest.raises(ClientError, match="AccessDenied"):
                pipeline.get_object(Bucket=other, Key="secret.txt")
            with pytest.raises(ClientError, match="AccessDenied"):
                pipeline.put_object(Bucket=other, Key="forged.txt", Body=b"x")
            assert other not in {bucket["Name"] for bucket in pipeline.list_buckets()["Buckets"]}
        finally:
            root_client.delete_object(Bucket=other, Key="secret.txt")
            root_client.delete_bucket(Bucket=other)
        # The mart readers: marts/ only, and nothing written.
        reader.list_objects_v2(Bucket=settings.lake_bucket, Prefix="marts/")
        with pytest.raises(ClientError, match="AccessDenied"):
            reader.get_object(Bucket=settings.lake_bucket, Key=probe)
        with pytest.raises(ClientError, match="AccessDenied"):
            reader.put_object(Bucket=settings.lake_bucket, Key="marts/forged.parquet", Body=b"x")
    finally:
        pipeline.delete_object(Bucket=settings.lake_bucket, Key=probe)


def test_airflows_metadata_is_on_its_own_server_as_a_role_that_is_no_superuser(settings):
    """Airflow's database is not on the shop's server (whose replication role decodes every database there), and
    Airflow's role owns its database but holds no superuser, role or database creation rights."""
    import psycopg
    from sqlalchemy.engine import make_url

    airflow = make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert airflow.port == int(os.environ["TIDEWATER_AIRFLOW_DB_PORT"]) != int(os.environ["TIDEWATER_PG_PORT"])
    with psycopg.connect(host=airflow.host, port=airflow.port, user=airflow.username, password=airflow.password,
                         dbname=airflow.database) as conn:
        rights = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication FROM pg_roles "
                              "WHERE rolname = current_user").fetchone()
        owner = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
        assert rights == (False, False, False, False)
        assert owner.fetchone()[0] == airflow.username
    with psycopg.connect(settings.shop_conninfo(admin=True)) as shop:
        assert shop.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                            (airflow.database,)).fetchone()[0] == 0
        assert shop.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                            (airflow.username,)).fetchone()[0] == 0
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(host=airflow.host, port=airflow.port, user=settings.debezium_user,
                        password=settings.debezium_password, dbname=airflow.database, connect_timeout=10)




def setup_secrets() -> tuple[str, ...]:
    import sys

    from tidewater.config import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "stack"))
    import envfile

    return envfile.SETUP_SECRETS


# The api-server writes its process title over its environment (setproctitle): /proc shows only NULs there. It
# starts from the same environment as these (stack/stack.sh airflow_up).
@pytest.mark.parametrize("component", ["scheduler", "dag-processor", "triggerer"])
def test_airflows_processes_hold_no_set_up_secret(airflow_api, component):
    """Airflow's processes (and so its tasks) get neither superuser's password, nor MinIO's root key, nor Kafka's
    admin password, nor the shop superuser's connection."""
    from pathlib import Path

    pid = (Path(os.environ["TIDEWATER_STACK_DIR"]) / "run" / f"airflow-{component}.pid").read_text().strip()
    environment = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")

    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=" in environment  # the environment of an Airflow process indeed
    leaked = [name for name in setup_secrets() if os.environ[name] in environment]
    assert not leaked and "AIRFLOW_CONN_SHOP_POSTGRES_ADMIN" not in environment, leaked
