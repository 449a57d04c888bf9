from __future__ import annotations

import json

import pytest

from tidewater.cdc import connector
from tidewater.config import Settings


def test_template_renders_every_placeholder():
    settings = Settings(cdc_db_host="shop-db", cdc_db_port=5432, cdc_topic_prefix="shop", cdc_heartbeat_ms=500)

    config = connector.render_config(settings)

    assert "${" not in json.dumps(config)
    assert config["database.hostname"] == "shop-db"
    assert config["database.port"] == "5432"
    assert config["plugin.name"] == "pgoutput"
    assert config["value.converter.schemas.enable"] == "true"
    assert config["heartbeat.interval.ms"] == "500"
    assert config["publication.autocreate.mode"] == "disabled"
    assert config["skipped.operations"] == "none"  # truncates are captured, never silently dropped


def test_unknown_placeholder_is_named(tmp_path):
    template = tmp_path / "c.json"
    template.write_text('{"x": "${nope}"}')

    with pytest.raises(connector.ConnectError, match="nope"):
        connector.render_config(Settings(), template)


def test_topic_names_follow_debezium():
    settings = Settings(cdc_topic_prefix="shop")

    assert connector.table_topic(settings, "orders") == "shop.shop.orders"
    assert connector.heartbeat_topic(settings) == "__debezium-heartbeat.shop"
