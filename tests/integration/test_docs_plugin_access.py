"""The docs plugin's app in process, on the stack's Airflow metadata database (so an integration test): Airflow's
own SimpleAuthManager checks real JWTs and the docs permission; a path no docs file can have answers 404, never
500. (tests/integration/test_docs_plugin.py checks the running api-server.)"""

from __future__ import annotations

import importlib.util
import secrets

import jwt
import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi.testclient import TestClient

from tidewater.config import REPO_ROOT

PLUGIN = REPO_ROOT / "plugins" / "tidewater_docs.py"


@pytest.fixture
def auth_manager(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))
    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                       "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import create_auth_manager

    return create_auth_manager()


@pytest.fixture
def client(tmp_path, monkeypatch, auth_manager):
    monkeypatch.setenv("TIDEWATER_GX_CONTEXT_DIR", str(tmp_path / "gx"))
    site = tmp_path / "gx" / "uncommitted" / "data_docs" / "local_site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("Data Docs index")
    spec = importlib.util.spec_from_file_location("tidewater_docs_under_test", PLUGIN)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    return TestClient(plugin.app, raise_server_exceptions=False)


def bearer(auth_manager, role: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth_manager.generate_jwt(SimpleAuthManagerUser(username='u', role=role))}"}


@pytest.mark.parametrize("role", ["viewer", "user", "op", "admin"])
def test_every_role_may_read_the_docs(client, auth_manager, role):
    response = client.get("/gx/index.html", headers=bearer(auth_manager, role))

    assert response.status_code == 200 and response.text == "Data Docs index"


def test_a_user_without_a_role_is_refused_the_docs_and_their_index(client, auth_manager):
    for path in ("/", "/gx/index.html"):
        response = client.get(path, headers=bearer(auth_manager, None))

        assert response.status_code == 403, (path, response.text)
        assert "may not read 'Tidewater docs'" in response.text


def test_no_token_or_a_token_signed_with_another_secret_is_refused(client, auth_manager):
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    real = auth_manager.generate_jwt(SimpleAuthManagerUser(username="u", role="admin"))
    forged = JWTGenerator(secret_key=secrets.token_urlsafe(64), valid_for=600, audience=jwt.decode(
        real, options={"verify_signature": False})["aud"]).generate({"sub": "u", "role": "admin"})

    assert client.get("/gx/index.html").status_code == 401
    assert client.get("/gx/index.html", headers={"Authorization": f"Bearer {forged}"}).status_code in (401, 403)
    assert client.get("/gx/index.html", cookies={"_token": forged}).status_code in (401, 403)


@pytest.mark.parametrize("path", ["/gx/index.html%00.png", "/gx/%00", "/gx%00/index.html", "/gx/" + "a" * 5000,
                                  "/gx/..%2F..%2Fgreat_expectations.yml", "/nope/index.html"])
def test_a_path_no_docs_file_can_have_answers_404(client, auth_manager, path):
    response = client.get(path, headers=bearer(auth_manager, "viewer"))

    assert response.status_code == 404, response.text
