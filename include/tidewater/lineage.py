"""OpenLineage: the Airflow provider's settings, and the names of the datasets Tidewater's tasks read and write.

Settings (`airflow_settings`, applied by both deployments through tidewater_dev.stackenv): Airflow's
``[openlineage]`` section, namespace ``TIDEWATER_OPENLINEAGE_NAMESPACE`` (``tidewater``), events to
``TIDEWATER_OPENLINEAGE_URL`` (HTTP, e.g. Marquez; optional ``TIDEWATER_OPENLINEAGE_API_KEY``) when set, else
appended as JSON lines to ``TIDEWATER_OPENLINEAGE_FILE``. (Any other transport: an OpenLineage config file named
by ``AIRFLOW__OPENLINEAGE__CONFIG_PATH``, which the provider reads first.)

Dataset names (the OpenLineage naming spec; docs/lineage.md):
  a Kafka topic        namespace ``kafka://<host:port>`` (the first bootstrap server), name ``<topic>``
  a lake change table  namespace ``s3://<bucket>``, name ``lake/main/<table>``: where its data files lie, the
                       table's Airflow asset too. dbt reads it as ``lake.main.<table>`` of the warehouse file's
                       DuckDB; `LakeNames` renames those inputs so a model's sources are the drain's outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from openlineage.client.transport.transform import EventTransformer

from tidewater.config import ConfigError, Settings
from tidewater.lake.catalog import LAKE
from tidewater.lake.objects import data_table_prefix

DEFAULT_NAMESPACE = "tidewater"
CHANGES_PREFIX = f"{LAKE}.main."  # dbt's names of the change tables (tidewater.lake.commit.CHANGES), attached by
#                                   tidewater.lake.dbt_plugin


def airflow_settings(env: Mapping[str, str]) -> dict[str, str]:
    """The ``AIRFLOW__OPENLINEAGE__*`` variables of these settings (see the module docstring)."""
    return {"AIRFLOW__OPENLINEAGE__NAMESPACE": env.get("TIDEWATER_OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE,
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(_named(_transport(env)))}


def _transport(env: Mapping[str, str]) -> dict[str, Any]:
    url = env.get("TIDEWATER_OPENLINEAGE_URL", "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"TIDEWATER_OPENLINEAGE_URL={url!r} is not an http(s) URL: give the lineage server's "
                              "base URL, e.g. http://marquez:5000 (events go to <URL>/api/v1/lineage)")
        transport: dict[str, Any] = {"type": "http", "url": url.rstrip("/"), "endpoint": "api/v1/lineage"}
        if env.get("TIDEWATER_OPENLINEAGE_API_KEY"):
            transport["auth"] = {"type": "api_key", "apiKey": env["TIDEWATER_OPENLINEAGE_API_KEY"]}
        return transport
    path = env.get("TIDEWATER_OPENLINEAGE_FILE", "").strip()
    if not path:
        raise ConfigError("OpenLineage has nowhere to send events: set TIDEWATER_OPENLINEAGE_FILE (a file the events "
                          "are appended to) or TIDEWATER_OPENLINEAGE_URL (a lineage server, e.g. Marquez)")
    return {"type": "file", "log_file_path": path, "append": True}


def _named(transport: dict[str, Any]) -> dict[str, Any]:
    """`transport`, behind `LakeNames`."""
    return {"type": "transform", "transformer_class": f"{__name__}.LakeNames", "transport": transport}


def kafka_topic_uri(bootstrap_servers: str, topic: str) -> str:
    """kafka://<first bootstrap server>/<topic> (the Kafka provider's asset URI, OpenLineage's topic name)."""
    server = bootstrap_servers.split(",")[0].strip()
    server = server.split("://", 1)[-1]  # a listener name (SASL_SSL://host:port) is not part of the address
    if not server:
        raise ConfigError(f"bootstrap.servers={bootstrap_servers!r} names no server: fix the Kafka connection")
    return f"kafka://{server}/{topic}"


def lake_table_dataset(bucket: str, table: str) -> tuple[str, str]:
    """(namespace, name) of a change table: (s3://<bucket>, lake/main/<table>), its data path; what the S3 provider
    makes of the table's Airflow asset (tidewater.assets.raw_table)."""
    return f"s3://{bucket}", data_table_prefix(table).rstrip("/")


def lake_table_of(dataset_name: str) -> str | None:
    """`table` for dbt's name of a lake change table (``lake.main.<table>``), else None."""
    table = dataset_name.removeprefix(CHANGES_PREFIX)
    return table if table != dataset_name and table and "." not in table else None


def dbt_flags() -> list[str]:
    """Cosmos' dbt flags: dbt's JSON artifacts, which Cosmos reads each model's lineage from, only while the
    OpenLineage provider is on (``[openlineage] disabled``, or no transport)."""
    from airflow.providers.openlineage import conf

    return ["--no-write-json"] if conf.is_disabled() else []


def report_drain(settings: Settings, topic: str, table: str) -> None:
    """Tells Airflow's hook lineage collector that this task read `topic` and wrote the change table `table` (the
    OpenLineage provider reports both in the task's events)."""
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    from tidewater.assets import raw_table
    from tidewater.cdc.topics import consumer_config

    collector = get_hook_lineage_collector()
    collector.add_input_asset(_DRAIN, uri=kafka_topic_uri(consumer_config(settings)["bootstrap.servers"], topic))
    collector.add_output_asset(_DRAIN, uri=raw_table(settings, table).uri)


class _Drain:
    """The hook lineage context of a drain (the collector keys what it collected by a context object)."""


_DRAIN = _Drain()


class LakeNames(EventTransformer):
    """Names dbt's inputs from the lake (``lake.main.<table>`` in a DuckDB namespace) as the drain names their
    tables (``s3://<bucket>``, ``lake/main/<table>``; the bucket of the process's settings)."""

    def transform(self, event: Any) -> Any:
        for dataset in getattr(event, "inputs", None) or []:
            table = lake_table_of(dataset.name) if str(dataset.namespace).startswith("duckdb://") else None
            if table is not None:
                dataset.namespace, dataset.name = lake_table_dataset(self._bucket(), table)
        return event

    def _bucket(self) -> str:
        if not hasattr(self, "bucket"):
            self.bucket = Settings.from_env().lake_bucket
        return self.bucket
