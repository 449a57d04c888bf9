"""Tidewater's pipeline status page inside the Airflow UI: is the pipeline healthy, in one place.

``/tidewater-status/`` is one HTML page (no external assets) that renders ``/tidewater-status/api/status``: per
table the Kafka lag, newest landed change, rows landed today and quarantined records; the Debezium connector and
the replication slots; the current publication, the newest gate result; an SVG chart of the tables' freshness
over the last day. The figures and where they come from: tidewater.ui.status (docs/operating.md).

Every route needs a logged-in Airflow user allowed to read the custom view `RESOURCE` (tidewater.ui.access).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

from tidewater.ui.access import reader

URL_PREFIX = "/tidewater-status"
RESOURCE = "Tidewater status"  # the custom view auth managers authorise (is_authorized_custom_view)

app = FastAPI(title="Tidewater status", dependencies=[Depends(reader(RESOURCE))])


@app.get("/api/status")
def status() -> dict:
    """Every part of the page (tidewater.ui.status.pipeline_status); a part that cannot be read carries its error.
    Tidewater's modules are imported here, not at the top: Airflow loads plugins into its long-running processes
    (the dag-processor too), which would otherwise keep a stale tidewater.config after a code change."""
    from tidewater.config import Settings
    from tidewater.ui.status import pipeline_status

    return pipeline_status(Settings.from_env())


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    """The page (tidewater/ui/status_page.html: inline style and script, nothing from elsewhere)."""
    from tidewater.ui.status import page_html

    return page_html(f"{URL_PREFIX}/api/status")




class TidewaterStatusPlugin(AirflowPlugin):
    name = "tidewater_status"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Tidewater status"}]
    external_views = [{"name": "Pipeline status", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "category": "browse", "url_route": "tidewater-status"}]
