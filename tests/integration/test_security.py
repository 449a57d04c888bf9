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
