"""The quarantine report email: counts, reasons (most frequent first, cut), file URIs (cut), what to do."""

from __future__ import annotations

from tidewater.alerts.messages import (
    QUARANTINE_MAX_FILES,
    QUARANTINE_MAX_REASONS,
    QuarantinedTopic,
    quarantine_report_email,
)
from tidewater.drain.drainer import REASON_MAX_CHARS, short_reason


def test_one_email_lists_every_topic_with_counts_reasons_and_files():
    topics = [
        QuarantinedTopic("shop.shop.customers", 3, {"not JSON": 1, "does not match its schema": 2},
                         ["s3://lake/quarantine/shop.shop.customers/a.jsonl"]),
        QuarantinedTopic("shop.shop.orders", 1, {"not a Debezium envelope": 1},
                         ["s3://lake/quarantine/shop.shop.orders/b.jsonl"]),
    ]
    email = quarantine_report_email(dag_id="cdc_drain", run_id="manual__1", run_link="http://af/runs/1",
                                    prefix_uri="s3://lake/quarantine/", topics=topics)

    assert email.subject == ("[tidewater] QUARANTINED 4 records in shop.shop.customers (3), shop.shop.orders (1)")
    html = email.html
    assert html.index("2: <code>does not match its schema</code>") < html.index("1: <code>not JSON</code>")
    assert "s3://lake/quarantine/shop.shop.customers/a.jsonl" in html
    assert "replay_from_offsets" in html and 'href="http://af/runs/1"' in html


def test_many_reasons_and_files_are_cut_with_counts():
    reasons = {f"reason {n:02d}": 1 for n in range(QUARANTINE_MAX_REASONS + 3)}
    uris = [f"s3://lake/quarantine/t/{n}.jsonl" for n in range(QUARANTINE_MAX_FILES + 5)]
    email = quarantine_report_email(dag_id="cdc_drain", run_id="r", run_link="http://af", prefix_uri="s3://lake/q/",
                                    topics=[QuarantinedTopic("t", 13, reasons, uris)])

    assert "… 3 more distinct reasons (3 records)" in email.html
    assert "… 5 more" in email.html
    assert f"{QUARANTINE_MAX_FILES}.jsonl" not in email.html


def test_a_reason_is_its_first_line_cut():
    assert short_reason("\n  first line \nsecond") == "first line"
    long = short_reason("x" * 1000)
    assert len(long) == REASON_MAX_CHARS and long.endswith("…")
