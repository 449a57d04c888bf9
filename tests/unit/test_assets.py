"""Assets of different lakes never share a name (Airflow keeps one active asset per name)."""

from __future__ import annotations

from tidewater import assets
from tidewater.config import Settings


def test_assets_of_two_buckets_have_different_names_and_uris():
    deployment, other = (Settings.from_env({"TIDEWATER_LAKE_BUCKET": bucket}) for bucket in ("lake-a", "lake-b"))
    for make in (assets.raw_lake, assets.published_marts, lambda settings: assets.raw_table(settings, "orders")):
        mine, theirs = make(deployment), make(other)
        assert mine.name != theirs.name and mine.uri != theirs.uri
        assert "lake-a" in mine.uri
