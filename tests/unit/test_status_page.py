"""The status page's pure logic (tidewater.ui.status): the freshness series, the per-table rows, parts that fail on
their own, and the newest gate run read from the validation results store's files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from tidewater.config import Settings
from tidewater.gate import context
from tidewater.ui import status

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_the_age_grows_between_landings_and_drops_when_a_newer_change_lands():
    landed = [(T0, T0 - minutes(2)), (T0 + minutes(5), T0 + minutes(4))]

    series = status.age_series(landed, now=T0 + minutes(8))

    assert series == [(T0, 2.0), (T0 + minutes(5), 7.0), (T0 + minutes(5), 1.0), (T0 + minutes(8), 4.0)]


def test_a_landing_of_only_older_changes_does_not_make_a_table_look_fresher():
    landed = [(T0, T0 - minutes(1)), (T0 + minutes(5), T0 - minutes(30)), (T0 + minutes(6), None)]

    series = status.age_series(landed, now=T0 + minutes(10))

    assert series == [(T0, 1.0), (T0 + minutes(5), 6.0), (T0 + minutes(6), 7.0), (T0 + minutes(10), 11.0)]


def test_no_landing_with_a_change_time_gives_no_points():
    assert status.age_series([(T0, None)], now=T0 + minutes(1)) == []


def test_a_part_that_fails_carries_its_error_and_the_others_their_values():
    def broken():
        raise ConnectionError("broker down")

    lag = status.measured("the topic lags", broken)
    changes = status.measured("the landed changes", lambda: {"orders": {
        "newest": "2026-12-04T09:58:00+00:00", "age_minutes": 2.0, "breached": False, "rows_today": 40}})
    quarantine = status.measured("the quarantine", lambda: {"shop.shop.orders": {
        "records": 3, "files": 1, "unreported_files": 1}})

    rows = status.table_rows(lag, changes, quarantine)

    assert lag == {"error": "could not read the topic lags: ConnectionError: broker down"}
    assert rows == [{"table": "orders", "topic": "shop.shop.orders", "lag": None, "lag_breached": None,
                     "newest_change": "2026-12-04T09:58:00+00:00", "newest_change_age_minutes": 2.0,
                     "change_breached": False, "rows_today": 40, "quarantined": 3, "quarantine_unreported_files": 1}]


def test_a_table_is_listed_by_its_topic_before_anything_landed():
    lag = {"value": {"shop.shop.payments": {"value": 12, "breached": False}}}

    [row] = status.table_rows(lag, {"value": {}}, {"value": {}})

    assert (row["table"], row["topic"], row["lag"], row["rows_today"], row["quarantined"]) == (
        "payments", "shop.shop.payments", 12, None, 0)


def _validation(suite: str, run: str, results: list[bool]) -> dict:
    return {"suite_name": suite, "meta": {"run_id": {"run_name": run, "run_time": "2026-12-04T10:00:05+00:00"}},
            "results": [{"success": ok, "expectation_config": {"type": "expect_column_values_to_not_be_null",
                                                               "kwargs": {"column": "order_id"}},
                         "result": {"unexpected_count": 0 if ok else 2, "element_count": 10}} for ok in results]}


def _store(root, suite: str, run: str, results: list[bool]) -> None:
    folder = root / "uncommitted" / "validations" / suite / run / "20261204T100005.000000Z"
    folder.mkdir(parents=True)
    (folder / f"candidate-{suite}.json").write_text(json.dumps(_validation(suite, run, results)))


def test_the_newest_gate_run_is_read_from_the_validation_store(tmp_path):
    settings = Settings(gx_context_dir=str(tmp_path))
    assert context.latest_report(settings) is None
    _store(tmp_path, "fct_orders", "publish-20261204T090000000000Z", [True, True])
    _store(tmp_path, "fct_orders", "publish-20261204T100000000000Z", [True, False])
    _store(tmp_path, "dim_customer", "publish-20261204T100000000000Z", [True])

    report, ran_at = context.latest_report(settings)

    assert report.publication_id == "20261204T100000000000Z"
    assert (report.success, report.evaluated, len(report.failures)) == (False, 3, 1)
    assert report.failures[0].describe() == ("fct_orders: expect_column_values_to_not_be_null(order_id) — "
                                             "2 unexpected of 10")
    assert ran_at == datetime(2026, 12, 4, 10, 0, 5, tzinfo=UTC)


def test_the_page_fetches_its_endpoint_and_loads_nothing_from_elsewhere():
    page = status.page_html("/tidewater-status/api/status")

    assert 'fetch("/tidewater-status/api/status"' in page
    assert "__API__" not in page
    assert "@import" not in page and "url(" not in page
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == ["data:,"]  # the icon, inline: no request for one
