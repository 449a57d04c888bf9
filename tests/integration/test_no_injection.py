"""Against the stack's PostgreSQL: a refused catalog login names neither the password nor any quoted form of it
(libpq's own error, which DuckDB wraps with the whole conninfo). tests/unit/test_no_injection.py has the rest."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import duckdb
import pytest

from tidewater.alerts import sources
from tidewater.config import get_connection
from tidewater.duck import load_extensions
from tidewater.lake import catalog

PASSWORD = "wr'o\"ng\\pw'' $(touch {pwned}); --"


def test_a_refused_catalog_login_is_reported_without_the_password(settings, tmp_path, monkeypatch):
    password = PASSWORD.format(pwned=tmp_path / "pwned")
    writer = get_connection(settings.lake_catalog_conn_id)
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_CATALOG_WRONG_PASSWORD",
                       f"postgresql://{quote(writer.login, safe='')}:{quote(password, safe='')}@{writer.host}:"
                       f"{writer.port}/{writer.schema}")

    with pytest.raises(sources.LakeCatalogError) as raised:
        sources.open_lake_catalog(replace(settings, lake_catalog_conn_id="lake_catalog_wrong_password"))

    message = str(raised.value)
    assert "lake_catalog_wrong_password" in message and "password authentication failed" in message
    for form in (password, "wr'o", "wr''o", "wr\\'o", "ng\\pw", "touch"):
        assert form not in message
    assert not (tmp_path / "pwned").exists()


def test_a_wrong_password_is_refused_and_the_right_one_attaches(lake):
    con = duckdb.connect()
    load_extensions(con, "ducklake", "postgres")
    writer, data_path = lake.metadata, lake.bucket.uri(catalog.DATA_PREFIX[catalog.LAKE])

    with pytest.raises(duckdb.Error) as refused:
        catalog.attach(con, catalog.LAKE, replace(writer, password=writer.password + "'x"), data_path)
    catalog.attach(con, catalog.LAKE, writer, data_path)

    assert "password authentication failed" in str(refused.value) and writer.password not in str(refused.value)
    assert con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0] >= 1
