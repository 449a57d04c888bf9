"""Tidewater's documentation inside the Airflow UI: GX data docs and dbt docs, for users allowed to read them.

Airflow 3 mounts a plugin's FastAPI app as it is, without its own authentication, so every route here
depends on `docs_reader`:
- the user is the one the api-server's REST API would see (`resolve_user_from_token`, the auth manager's JWT
  validation) on the bearer token of the Authorization header or, in the browser, the `_token` cookie the
  Airflow UI sets at login: 401 without one, 401/403 for an expired or invalid one;
- the auth manager must allow that user to read the custom view `RESOURCE` (``is_authorized_custom_view``, the
  auth managers' hook for plugins' views), else 403. SimpleAuthManager allows every role from viewer up; with
  the FAB or Keycloak auth manager, grant the permission (GET/"can read" on "Tidewater docs") to the roles
  that may read the docs.
A path no docs file can have (outside the site, a NUL character) answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

URL_PREFIX = "/tidewater-docs"
RESOURCE = "Tidewater docs"  # the custom view auth managers authorise (is_authorized_custom_view)
bearer = HTTPBearer(auto_error=False)


async def logged_in_user(request: Request,
                         credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]):
    """The Airflow user of the request; 401 without a token, 401/403 for an expired or invalid one."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    if credentials and credentials.scheme.lower() == "bearer":
        return await resolve_user_from_token(credentials.credentials)
    return await resolve_user_from_token(request.cookies.get(COOKIE_NAME_JWT_TOKEN))


async def docs_reader(user: Annotated[Any, Depends(logged_in_user)]):
    """The user, if the auth manager lets them read the docs (`RESOURCE`); 403 otherwise."""
    from airflow.api_fastapi.app import get_auth_manager

    if not get_auth_manager().is_authorized_custom_view(method="GET", resource_name=RESOURCE, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"user {user.get_name()!r} may not read {RESOURCE!r}: an "
                                                       "admin grants it (SimpleAuthManager: any role)")
    return user


app = FastAPI(title="Tidewater docs", dependencies=[Depends(docs_reader)])

INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>Tidewater docs</title>
<style>body{{font-family:sans-serif;margin:2rem}} li{{margin:.5rem 0}}</style></head><body>
<h1>Tidewater documentation</h1><ul>{items}</ul></body></html>"""
TITLES = {"gx": "Data quality: the gate's Great Expectations data docs (every validation of the marts)",
          "dbt": "Warehouse models: dbt docs (lineage, columns, tests)"}


def _docs_file(site: str, path: str):
    """The docs file, or None. Tidewater's modules are imported here, not at the top: Airflow loads plugins
    into its long-running processes (the dag-processor too), which would otherwise keep a stale
    tidewater.config after a code change."""
    from tidewater.config import Settings
    from tidewater.gate import docs

    return docs.resolve_file(Settings.from_env(), site, path) if site in docs.SITES else None


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    items = []
    for site, title in TITLES.items():
        if _docs_file(site, "index.html"):
            items.append(f'<li><a href="{URL_PREFIX}/{site}/index.html">{title}</a></li>')
        else:
            items.append(f"<li>{title}: not built yet (the warehouse DAG builds it)</li>")
    return INDEX.format(items="".join(items))


@app.get("/{site}/{path:path}")
def site_file(site: str, path: str) -> FileResponse:
    file = _docs_file(site, path)
    if file is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{site}/{path} is not in the docs")
    return FileResponse(file)


class TidewaterDocsPlugin(AirflowPlugin):
    name = "tidewater_docs"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Tidewater docs"}]
    external_views = [{"name": "Data docs", "href": f"{URL_PREFIX}/", "destination": "nav", "category": "browse",
                       "url_route": "tidewater-docs"}]
