from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from tidewater.config import ConfigError, Settings, get_connection, parse_connection, read_env_file


def test_uri_connection_is_parsed_like_airflow():
    conn = parse_connection("shop", "postgresql://shop_app:p%40ss@127.0.0.1:25432/shop")

    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "postgres", "127.0.0.1", 25432, "shop_app", "p@ss", "shop")
    assert conninfo_to_dict(conn.postgres_conninfo()) == {
        "host": "127.0.0.1", "port": "25432", "user": "shop_app", "password": "p@ss", "dbname": "shop"}


def test_a_conninfo_keeps_quotes_and_libpq_extras_but_not_airflow_ones():
    conn = parse_connection("src", '{"conn_type": "postgres", "host": "db", "login": "o\'brien", '
                                   '"password": "it\'s a \\\\ pass", '
                                   '"extra": {"sslmode": "require", "cursor": "named"}}')

    assert conninfo_to_dict(conn.postgres_conninfo()) == {
        "host": "db", "user": "o'brien", "password": "it's a \\ pass", "sslmode": "require"}


def test_a_value_that_is_no_connection_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"connection 'shop': not an Airflow connection .* expected JSON or a URI"):
        parse_connection("shop", "shop_app@127.0.0.1")


def test_json_connection_keeps_extras():
    conn = parse_connection(
        "kafka_default", '{"conn_type": "kafka", "extra": {"bootstrap.servers": "h:1", "enable.auto.commit": false}}'
    )

    assert conn.conn_type == "kafka"
    assert conn.extra == {"bootstrap.servers": "h:1", "enable.auto.commit": False}


def test_missing_connection_names_the_variable_and_the_fix():
    with pytest.raises(ConfigError, match=r"AIRFLOW_CONN_LAKE_S3.*make stack-up"):
        get_connection("lake_s3", env={})


def test_the_kafka_client_config_of_an_undefined_connection_names_the_variable(monkeypatch):
    from tidewater.cdc.topics import consumer_config

    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_KAFKA", raising=False)
    with pytest.raises(ConfigError, match="connection 'no_such_kafka' is not defined: set AIRFLOW_CONN_NO_SUCH_KAFKA"):
        consumer_config(Settings(kafka_conn_id="no_such_kafka"))


def test_the_kafka_client_config_is_the_providers_hooks_with_overrides(monkeypatch):
    from tidewater.cdc.topics import consumer_config

    monkeypatch.setenv("AIRFLOW_CONN_SOME_KAFKA", '{"conn_type": "kafka", "extra": {"bootstrap.servers": "k:9092", '
                                                  '"security.protocol": "SASL_PLAINTEXT"}}')
    config = consumer_config(Settings(kafka_conn_id="some_kafka"), **{"group.id": "g"})
    assert config == {"bootstrap.servers": "k:9092", "security.protocol": "SASL_PLAINTEXT", "group.id": "g"}


def test_env_file_values_are_unquoted(tmp_path):
    path = tmp_path / "env"
    path.write_text("# comment\nA='x y'\nB='{\"k\": 1}'\nC=plain\n")

    assert read_env_file(path) == {"A": "x y", "B": '{"k": 1}', "C": "plain"}


def test_settings_come_from_the_environment_with_defaults():
    settings = Settings.from_env({"TIDEWATER_CDC_TOPIC_PREFIX": "acme", "TIDEWATER_PG_PORT": "6543"})

    assert settings.cdc_topic_prefix == "acme"
    assert settings.cdc_db_port == 6543
    assert settings.kafka_conn_id == "kafka_default"


def test_a_malformed_number_is_named():
    with pytest.raises(ConfigError, match="TIDEWATER_CDC_TOPIC_PARTITIONS='many'"):
        Settings.from_env({"TIDEWATER_CDC_TOPIC_PARTITIONS": "many"})
