"""The docs plugin in the running api-server: docs for logged-in users, nothing for anyone else.

The api-server loads plugins when it starts: after changing plugins/, restart it
(`stack/stack.sh airflow-down && stack/stack.sh airflow-up`).
"""

from __future__ import annotations

import pytest
import requests

from tidewater.gate import context, docs

PREFIX = "/tidewater-docs"


@pytest.fixture(scope="module")
def gx_docs_built(settings):
    """The GX data docs site of the repository's context, built (what the gate's checkpoints update)."""
    context.open_context(settings).build_data_docs(site_names=[context.DOCS_SITE])
    assert docs.resolve_file(settings, "gx", "index.html")


def get(airflow_api, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{airflow_api.base_url}{PREFIX}{path}", timeout=30, allow_redirects=False, **kwargs)


def test_logged_in_user_gets_the_docs_index(airflow_api, gx_docs_built):
    bearer = {"Authorization": f"Bearer {airflow_api.token()}"}

    landing = get(airflow_api, "/", headers=bearer)
    gx_index = get(airflow_api, "/gx/index.html", headers=bearer)
    from_cookie = get(airflow_api, "/gx/index.html", cookies={"_token": airflow_api.token()})

    assert landing.status_code == 200, landing.text
    assert f'href="{PREFIX}/gx/index.html"' in landing.text
    assert gx_index.status_code == 200 and "Data Docs" in gx_index.text
    assert from_cookie.status_code == 200 and from_cookie.text == gx_index.text


@pytest.mark.parametrize("credentials", [
    {},
    {"headers": {"Authorization": "Bearer not-a-jwt"}},
    {"cookies": {"_token": "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.forged"}},
])
def test_anonymous_or_forged_requests_are_refused(airflow_api, gx_docs_built, credentials):
    for path in ("/", "/gx/index.html", "/dbt/index.html"):
        response = get(airflow_api, path, **credentials)

        assert response.status_code in (401, 403), (path, response.status_code)
        assert "Data Docs" not in response.text


def test_paths_outside_the_docs_are_not_served(airflow_api):
    bearer = {"Authorization": f"Bearer {airflow_api.token()}"}

    response = get(airflow_api, "/gx/..%2F..%2F..%2Fgreat_expectations.yml", headers=bearer)

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/gx/index.html%00.png", "/gx/%00", "/gx/" + "a" * 5000])
def test_a_path_no_file_can_have_answers_404_not_500(airflow_api, path):
    response = get(airflow_api, path, headers={"Authorization": f"Bearer {airflow_api.token()}"})

    assert response.status_code == 404, response.text


def test_the_ui_lists_the_docs_view(airflow_api):
    plugins = airflow_api.request("GET", "plugins")["plugins"]

    [plugin] = [p for p in plugins if p["name"] == "tidewater_docs"]
    assert plugin["external_views"][0]["href"] == f"{PREFIX}/"
