"""Gate results summarised: failures named with their data docs page; success lists every page."""

from __future__ import annotations

from tidewater.gate.report import summarise


def validation(suite: str, *outcomes: dict) -> dict:
    return {"suite_name": suite, "results": list(outcomes)}


def outcome(success: bool, kind: str, result: dict | None = None, **kwargs) -> dict:
    return {"success": success, "expectation_config": {"type": kind, "kwargs": kwargs}, "result": result or {}}


PAGES = {"fct_order_items": "http://ui/docs/gx/fct.html", "dim_date": "http://ui/docs/gx/date.html"}


def test_failures_are_named_with_their_sample_and_page():
    report = summarise("p1", [
        validation("fct_order_items",
                   outcome(False, "expect_column_values_to_be_between",
                           {"unexpected_count": 1, "element_count": 50, "partial_unexpected_list": [-3]},
                           column="quantity", min_value=0),
                   outcome(True, "expect_column_values_to_be_unique", column="order_item_id")),
        validation("dim_date", outcome(True, "expect_column_values_to_be_unique", column="date_key")),
    ], PAGES)

    assert not report.success
    assert report.evaluated == 3
    message = report.failure_message()
    assert "1 of 3 expectations failed" in message
    assert "fct_order_items: expect_column_values_to_be_between(quantity) — 1 unexpected of 50, e.g. [-3]" in message
    assert "Data docs: http://ui/docs/gx/fct.html" in message
    assert "date.html" not in message


def test_pair_expectations_name_both_columns_and_errors_are_reported():
    report = summarise("p2", [validation("reconciliation", {
        "success": False,
        "expectation_config": {"type": "expect_column_pair_values_to_be_equal",
                               "kwargs": {"column_A": "fact_item_count", "column_B": "source_item_count"}},
        "result": {}, "exception_info": {"raised_exception": True, "exception_message": "boom"}})], {})

    [failure] = report.failures
    assert failure.describe() == ("reconciliation: expect_column_pair_values_to_be_equal(fact_item_count, "
                                  "source_item_count) — error: boom")


def test_success_lists_every_page():
    report = summarise("p3", [validation("dim_date", outcome(True, "expect_column_values_to_be_unique",
                                                             column="date_key"))], PAGES)

    assert report.success
    assert sorted(report.docs_pages) == sorted(PAGES.values())


def test_errors_reported_per_metric_are_found():
    report = summarise("p4", [validation("fct_orders_references", {
        "success": False,
        "expectation_config": {"type": "expect_column_pair_values_to_be_equal",
                               "kwargs": {"column_A": "customer_key", "column_B": "resolved_customer_key"}},
        "result": {},
        "exception_info": {"MetricConfigurationID(...)": {"raised_exception": True,
                                                          "exception_message": "ambiguous"}}})], {})

    assert report.failures[0].observed == "error: ambiguous"
