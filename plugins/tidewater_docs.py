"""Tidewater's documentation inside the Airflow UI: GX data docs and dbt docs, for users allowed to read them.

Every route needs a logged-in Airflow user allowed to read the custom view `RESOURCE`
(tidewater.ui.access).
A path no docs file can have (outside the site, a NUL character) answers 404.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import FileResponse, HTMLResponse

from tidewater.ui.access import reader

URL_PREFIX = "/tidewater-docs"
RESOURCE = "Tidewater docs"  # the custom view auth managers authorise (is_authorized_custom_view)

app = FastAPI(title="Tidewater docs", dependencies=[Depends(reader(RESOURCE))])

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
