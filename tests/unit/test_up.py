"""`make up`'s DAG list and its "where to look" lines (tidewater_dev.up)."""

from __future__ import annotations

import ast

import pytest

from tidewater.config import REPO_ROOT, Settings
from tidewater_dev import up


def _dag_ids() -> set[str]:
    """The DAG ids of dags/ and the shop example's bundle: each file's @dag-decorated function."""
    ids = set()
    for path in [*(REPO_ROOT / "dags").glob("*.py"), *(REPO_ROOT / "examples" / "shop" / "dags").glob("*.py")]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and any(
                    getattr(getattr(decorator, "func", decorator), "id", None) == "dag"
                    for decorator in node.decorator_list):
                ids.add(node.name)
    return ids


def test_make_up_unpauses_every_dag_of_the_product_and_the_shop():
    assert set(up.DAGS) == _dag_ids()
    assert {up.DRAIN_DAG, up.WAREHOUSE_DAG, up.TRAFFIC_DAG} <= set(up.DAGS)


def test_shop_traffic_accepts_the_run_make_up_starts():
    source = (REPO_ROOT / "examples" / "shop" / "dags" / "shop_traffic.py").read_text()
    assert "maximum=7 * 24 * 3600" in source and up.TRAFFIC_SECONDS == 7 * 24 * 3600


def test_where_to_look_names_each_ui_directly_and_through_the_proxy():
    env = {"TIDEWATER_PROXY_PORT": "18000", "TIDEWATER_MAIL_UI_PORT": "18025", "TIDEWATER_JUPYTER_PORT": "18888"}
    settings = Settings.from_env({"AIRFLOW__API__BASE_URL": "http://127.0.0.1:18080",
                                  "TIDEWATER_S3_CONSOLE_URL": "http://127.0.0.1:19001"})
    text = "\n".join(up.where_to_look(settings, env))
    for direct, proxied in [("http://127.0.0.1:18080/ ", "http://127.0.0.1:18000/ "),
                            ("http://127.0.0.1:18080/tidewater-docs/", "http://127.0.0.1:18000/tidewater-docs/"),
                            ("http://127.0.0.1:18080/tidewater-status/", "http://127.0.0.1:18000/tidewater-status/"),
                            ("http://127.0.0.1:19001/", "http://127.0.0.1:18000/minio/"),
                            ("http://127.0.0.1:18025/mail/", "http://127.0.0.1:18000/mail/"),
                            ("http://127.0.0.1:18888/notebook/", "http://127.0.0.1:18000/notebook/")]:
        assert direct in text and proxied in text
    assert "TIDEWATER_AIRFLOW_ADMIN_PASSWORD" in text


def test_waiting_for_the_first_publication_names_what_and_where_on_failure(monkeypatch):
    settings = Settings.from_env({"AIRFLOW__API__BASE_URL": "http://127.0.0.1:18080"})
    answers = iter([None, None, "20260101T000000Z"])
    monkeypatch.setattr(up.publish, "current_publication", lambda _settings: next(answers))
    assert up.wait_for_publication(settings, 60, poll_s=0).publication_id == "20260101T000000Z"

    monkeypatch.setattr(up.publish, "current_publication", lambda _settings: None)
    with pytest.raises(up.UpError, match=r"no publication after 0 s: waited for the first publication .*"
                                         r"tidewater\.publications.*Logs: .*http://127\.0\.0\.1:18080.*airflow-"):
        up.wait_for_publication(settings, 0, poll_s=0)
    with pytest.raises(up.UpError, match=r"^warehouse run r1 failed"):
        up.wait_for_publication(settings, 60, poll_s=0, failed=lambda: "warehouse run r1 failed")
