"""One address (stack/config/Caddyfile, `stack/stack.sh proxy-up`) on the test instance: each path reaches its
service, and each service still wants its own login through it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
import requests

from tidewater.config import REPO_ROOT, read_env_file

STACK_SH = str(REPO_ROOT / "stack" / "stack.sh")


@pytest.fixture(scope="module")
def proxy(settings) -> Iterator[tuple[str, dict[str, str]]]:
    """The test instance's proxy and mail view (started here if they were not running, stopped afterwards):
    (base URL, the environment it runs with)."""
    # The test profile's ports win over an .stack-test/env written before they existed.
    env = {**os.environ, **read_env_file(REPO_ROOT / "stack" / "test.env"), "TIDEWATER_STACK_PROFILE": "stack/test.env"}
    base = f"http://127.0.0.1:{env['TIDEWATER_PROXY_PORT']}"
    running = subprocess.run([STACK_SH, "status"], env=env, capture_output=True, text=True).stdout
    started = "proxy: healthy" not in running
    if started:
        result = subprocess.run([STACK_SH, "proxy-up"], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"stack/stack.sh proxy-up failed:\n{result.stdout}\n{result.stderr}"
    yield base, env
    if started:
        subprocess.run([STACK_SH, "proxy-down"], env=env, capture_output=True, text=True, timeout=120)


def test_airflow_is_at_the_root_and_wants_its_login(proxy, airflow_api):
    base, env = proxy
    page = requests.get(f"{base}/", timeout=30)
    assert page.status_code == 200 and '<base href="/"' in page.text and "<title>Airflow</title>" in page.text
    assert requests.get(f"{base}/api/v2/dags", timeout=30).status_code == 401
    token = requests.post(f"{base}/auth/token", timeout=30, json={
        "username": env["TIDEWATER_AIRFLOW_ADMIN_USER"], "password": env["TIDEWATER_AIRFLOW_ADMIN_PASSWORD"]})
    assert token.status_code in (200, 201), token.text
    dags = requests.get(f"{base}/api/v2/dags", timeout=30,
                        headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert dags.status_code == 200 and "cdc_drain" in {dag["dag_id"] for dag in dags.json()["dags"]}
    assert requests.get(f"{base}/tidewater-docs/", timeout=30).status_code == 401


def test_the_minio_console_loads_under_its_path_and_wants_its_login(proxy):
    base, env = proxy
    page = requests.get(f"{base}/minio/", timeout=30)
    assert page.status_code == 200 and '<base href="/minio/"/>' in page.text
    deep = requests.get(f"{base}/minio/browser/tidewater-lake", timeout=30)
    assert '<base href="/minio/"/>' in deep.text, "a reloaded console page must keep its base path"
    scripts = re.findall(r'src="\./(static/js/[^"]+\.js)"', page.text)
    assert scripts
    for script in scripts:
        asset = requests.get(f"{base}/minio/{script}", timeout=30)
        assert asset.status_code == 200 and "javascript" in asset.headers["Content-Type"], script
    assert requests.get(f"{base}/minio/api/v1/buckets", timeout=30).status_code in (401, 403)
    session = requests.Session()
    login = session.post(f"{base}/minio/api/v1/login", timeout=30, json={
        "accessKey": env["TIDEWATER_S3_ACCESS_KEY"], "secretKey": env["TIDEWATER_S3_SECRET_KEY"]})
    assert login.status_code == 204, login.text
    buckets = session.get(f"{base}/minio/api/v1/buckets", timeout=30)
    assert buckets.status_code == 200 and env["TIDEWATER_LAKE_BUCKET"] in buckets.text
    direct = requests.get(f"http://127.0.0.1:{env['TIDEWATER_S3_CONSOLE_PORT']}/", timeout=30)
    assert '<base href="/"/>' in direct.text, "the console's own port must keep working"


def test_the_mail_view_wants_its_login_and_shows_the_caught_mail(proxy):
    base, env = proxy
    assert requests.get(f"{base}/mail/", timeout=30).status_code == 401
    login = (env["TIDEWATER_MAIL_UI_USER"], env["TIDEWATER_MAIL_UI_PASSWORD"])
    page = requests.get(f"{base}/mail/", auth=login, timeout=30)
    assert page.status_code == 200 and "Mail caught by the SMTP sink" in page.text
    assert env["TIDEWATER_STACK_DIR"] in page.text, "the test instance's mail, not the deployment's"
    caught = sorted(os.path.basename(name) for name in os.listdir(os.path.join(env["TIDEWATER_STACK_DIR"], "mail"))
                     if name.endswith(".eml"))
    if caught:
        message = requests.get(f"{base}/mail/{caught[-1]}", auth=login, timeout=30)
        assert message.status_code == 200 and "all mail" in message.text
