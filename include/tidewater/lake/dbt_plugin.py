"""dbt-duckdb plugin: the warehouse's connections get the lake the way the drain gets it.

Each DuckDB connection dbt opens gets the S3 secret of the Airflow connection `lake_conn_id` and the DuckLake
catalog of `lake_catalog_conn_id`, attached read-only as ``lake`` (`catalog.attach`, `duck.create_s3_secret`):
one credential path for the drain, dbt and DuckDB, resolved when dbt connects (inside a task, through Airflow's
secrets backends), never written into the profile. Named in ``dbt/profiles.yml`` under ``plugins``.
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from tidewater.config import Settings, get_connection
from tidewater.duck import create_s3_secret
from tidewater.lake import catalog


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._settings: Settings | None = None

    def configure_connection(self, conn: Any) -> None:
        settings = self._settings = self._settings or Settings.from_env()
        create_s3_secret(conn, get_connection(settings.lake_conn_id))
        catalog.attach(conn, catalog.LAKE, get_connection(settings.lake_catalog_conn_id),
                       catalog.data_path(settings, catalog.LAKE), read_only=True)
