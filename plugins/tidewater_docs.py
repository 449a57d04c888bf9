"""Tidewater's documentation inside the Airflow UI: GX data docs and dbt docs, for users allowed to read them.

Every route needs a logged-in Airflow user allowed to read the custom view `RESOURCE`
(tidewater.ui.access).
The landing page lists the gate's newest validation per checkpoint and the sites (tidewater.ui.docs_index); GX's
pages are served with their CDN scripts and styles replaced by pinned copies (tidewater.ui.vendor).
A path no docs file can have (outside the site, a NUL character) answers 404.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import FileResponse, HTMLResponse, Response

from tidewater.ui.access import reader

URL_PREFIX = "/tidewater-docs"
RESOURCE = "Tidewater docs"  # the custom view auth managers authorise (is_authorized_custom_view)

app = FastAPI(title="Tidewater docs", dependencies=[Depends(reader(RESOURCE))])

VENDOR = "vendor"  # the pinned copies of what GX's pages load from CDNs (tidewater.ui.vendor)


def _settings():
    """Tidewater's modules are imported in the routes, not at the top: Airflow loads plugins into its long-running
    processes (the dag-processor too), which would otherwise keep a stale tidewater.config after a code change."""
    from tidewater.config import Settings

    return Settings.from_env()


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    from tidewater.ui import docs_index

    return docs_index.render(_settings(), URL_PREFIX)


@app.get("/{site}/{path:path}")
def site_file(site: str, path: str) -> Response:
    """A docs file. GX's pages and style sheets are served rewritten to the pinned copies under /vendor/ and the
    site's own logo: nothing they load leaves this host."""
    from tidewater.gate import docs
    from tidewater.ui import vendor

    if site == VENDOR:
        file = docs.file_under(vendor.assets_dir(), path)
    else:
        file = docs.resolve_file(_settings(), site, path) if site in docs.SITES else None
    if file is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{site}/{path} is not in the docs")
    if site == "gx" and file.suffix == ".html":
        return HTMLResponse(vendor.offline_page(file.read_text(encoding="utf-8"), f"{URL_PREFIX}/{VENDOR}",
                                                f"{URL_PREFIX}/gx"))
    if site == "gx" and file.suffix == ".css":
        return Response(vendor.offline_styles(file.read_text(encoding="utf-8")), media_type="text/css")
    return FileResponse(file)


class TidewaterDocsPlugin(AirflowPlugin):
    name = "tidewater_docs"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Tidewater docs"}]
    external_views = [{"name": "Data docs", "href": f"{URL_PREFIX}/", "destination": "nav", "category": "browse",
                       "url_route": "tidewater-docs"}]
