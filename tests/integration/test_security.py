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
