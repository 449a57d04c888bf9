"""The Airflow Assets Tidewater's DAGs produce and consume: one definition, imported by every DAG."""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

from tidewater.config import Settings
from tidewater.lake.objects import DATA, data_table_prefix

# cdc_drain attaches an event for each table that landed data to this alias (tables are found at run time).
RAW_TABLES = AssetAlias("tidewater_raw_tables")

# Assets are named by their URI (Airflow's default), not by a fixed name: Airflow keeps one active asset
# per name, and `airflow dags test` writes every DAG of the folder as parsed in its environment, so a test
# run against another bucket (TIDEWATER_LAKE_BUCKET) would take the name from the deployment's asset and
# fail its next run ("inactive assets in its outlets"; seen in `make test`).


def raw_table(settings: Settings, table: str) -> Asset:
    """A change table of the lake, named by where its data files are."""
    return Asset(uri=f"s3://{settings.lake_bucket}/{data_table_prefix(table).rstrip('/')}")


def raw_lake(settings: Settings) -> Asset:
    """One event per cdc_drain run that landed anything: what the warehouse is scheduled on."""
    return Asset(uri=f"s3://{settings.lake_bucket}/{DATA}")


def published_marts(settings: Settings) -> Asset:
    """One event per publication of the marts (the warehouse DAG's publish task, after the gate passed)."""
    return Asset(uri=f"s3://{settings.lake_bucket}/marts")
