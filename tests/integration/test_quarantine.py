"""No quarantined record goes unnoticed (docs/alerts.md), against the real Kafka, MinIO and an SMTP server:

- above TIDEWATER_DRAIN_MAX_BAD_SHARE a drain fails before its commit, its retries fail the same way, and a run
  that accepts the topic's quarantine commits;
- under the limit, `airflow dags test cdc_drain` mails one report per run (counts, reasons, file URIs), puts the
  reasons and file keys in the table's asset event and records the reported files in the lake;
- the warehouse's publish refuses while a committed quarantine file is unreported.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime

import pytest

from tests.support.airflow import metadata_session
from tests.support.alerts import dags_test_mailing, html_body
from tests.support.kafka import produce, real_events
from tests.support.lake import drain_once, new_lake
from tidewater import drain
from tidewater.drain import drainer, quarantine
from tidewater.gate import steps
from tidewater.lake import commit
from tidewater.lake import objects as layout
from tidewater_dev.mailsink import read_messages

GARBAGE = [b"garbage", b"more garbage"]


def _position(lake, topic: str) -> int:
    """Where the lake continues partition 0 of the topic."""
    return commit.read_positions(lake.con, topic).offsets[0]


def test_above_the_limit_nothing_is_committed_every_retry_fails_and_acceptance_commits(shop_changes, lake,
                                                                                        group_id,
                                                                                        scratch_topic):
    topic = scratch_topic
    produce(shop_changes, topic, [*real_events(shop_changes, 10), *GARBAGE])

    with pytest.raises(drainer.QuarantineLimitExceeded) as failed:
        drain_once(shop_changes, lake, topic, group_id, max_bad_share=0.05)

    message = str(failed.value)
    assert message.startswith(f"{topic}: 2 of 12 records (16.7%) were quarantined, above the 5.0% limit")
    assert f"s3://{lake.bucket.bucket}/quarantine/{topic}/" in message
    assert "positions did not move" in message and f'{{"accept_quarantine_topic": "{topic}"}}' in message
    assert _position(lake, topic) == 0  # nothing committed
    assert lake.bucket.keys(layout.DATA + "/") == []  # the run's data files are gone
    first_keys = lake.bucket.keys("quarantine/")
    assert len(first_keys) == 1  # kept for people to read
    assert quarantine.committed_files(lake) == []  # not accepted by a commit: neither reported nor blocking

    for _ in range(2):  # the retries: the same slice, the same failure, the leftovers replaced (not doubled)
        with pytest.raises(drainer.QuarantineLimitExceeded, match=re.escape(f"{topic}: 2 of 12 records")):
            drain_once(shop_changes, lake, topic, group_id, max_bad_share=0.05)
        assert lake.bucket.keys("quarantine/") == first_keys
        assert _position(lake, topic) == 0

    accepted = drain_once(shop_changes, lake, topic, group_id, accept=True, max_bad_share=0.05)

    assert (accepted.rows, accepted.quarantined, accepted.accepted_quarantine) == (10, 2, True)
    assert accepted.quarantine_files == first_keys
    assert _position(lake, topic) == 12
    assert [f.key for f in quarantine.unreported_files(lake)] == first_keys  # committed, not yet reported
    assert drain_once(shop_changes, lake, topic, group_id, max_bad_share=0.05).records == 0


def drain_mailing(smtp_port: int, lake, topic: str, conf: dict | None = None):
    """`airflow dags test cdc_drain` of `topic` alone into `lake`, mailing to the test's SMTP server."""
    return dags_test_mailing("cdc_drain", smtp_port, conf, **lake.env,
                             TIDEWATER_DRAIN_TOPIC_REGEX=f"^{re.escape(topic)}$")


def _asset_extras(env: dict, uri: str, since: datetime) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    with metadata_session(env) as session:
        return [event.extra for event in session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri, AssetEvent.timestamp >= since)).all()]


def test_cdc_drain_reports_quarantine_once_and_fails_above_the_limit_until_accepted(shop_changes, smtp_server,
                                                                                    scratch_topic):
    port, maildir = smtp_server
    topic = scratch_topic
    good = real_events(shop_changes, 40)
    started = datetime.now(UTC)
    with new_lake(shop_changes) as lake:
        produce(shop_changes, topic, [*good[:20], b"not json at all", *good[20:]])  # 1 of 41: under 5%

        first = drain_mailing(port, lake, topic)
        second = drain_mailing(port, lake, topic)  # nothing new: no second report

        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        [report] = read_messages(maildir)
        assert report["Subject"] == f"[tidewater] QUARANTINED 1 record in {topic} (1)"
        body = html_body(report)
        [key] = lake.bucket.keys(f"quarantine/{topic}/")
        assert lake.bucket.uri(key) in body
        assert "1: <code>" in body and "/dags/cdc_drain/runs/" in body
        assert lake.bucket.get_json(quarantine.REPORTED_KEY) == {"files": [key]}
        extras = _asset_extras(lake.env, lake.bucket.uri(layout.DATA + "/order_items"), started)
        [extra] = [e for e in extras if e.get("topic") == topic]
        assert (extra["rows"], extra["quarantined"], extra["quarantine_files"]) == (40, 1, [key])
        assert sum(extra["quarantine_reasons"].values()) == 1
        steps.check_quarantine_reported(shop_changes, lake)  # reported: the warehouse may publish

        produce(shop_changes, topic, [*good[:10], *GARBAGE])  # 2 of 12: above 5%
        failed = drain_mailing(port, lake, topic)

        assert failed.returncode != 0
        mails = read_messages(maildir)
        assert len(mails) == 2, [m["Subject"] for m in mails]  # the final failure mails once, no report
        assert mails[1]["Subject"].startswith(f"[tidewater] FAILED cdc_drain.drain_partitions[0]: "
                                              f"QuarantineLimitExceeded: {topic}: 2 of 12 records (16.7%) "
                                              "were quarantined")
        assert "try 3)" in html_body(mails[1])  # both retries drained the slice again and failed the same way
        assert "accept_quarantine_topic" in html_body(mails[1])
        steps.check_quarantine_reported(shop_changes, lake)  # uncommitted quarantine does not block

        typo = drain_mailing(port, lake, topic, {"accept_quarantine_topic": topic + "x"})
        assert typo.returncode != 0
        assert f"accept_quarantine_topic='{topic}x' is not a topic cdc_drain drains" in typo.stdout + typo.stderr

        accepted = drain_mailing(port, lake, topic, {"accept_quarantine_topic": topic})

        assert accepted.returncode == 0, accepted.stdout[-3000:] + accepted.stderr[-3000:]
        mails = read_messages(maildir)
        assert [m["Subject"] for m in mails[3:]] == [f"[tidewater] QUARANTINED 2 records in {topic} (2)"]
        assert len(lake.bucket.get_json(quarantine.REPORTED_KEY)["files"]) == 2


def test_publish_refuses_while_committed_quarantine_is_unreported(shop_changes, lake, group_id,
                                                                  scratch_topic, smtp_server,
                                                                  monkeypatch):
    port, maildir = smtp_server
    topic = scratch_topic
    produce(shop_changes, topic, [*real_events(shop_changes, 30), b"garbage"])
    drain_once(shop_changes, lake, topic, group_id)  # 1 of 31 under the limit: committed, but never mailed

    with pytest.raises(quarantine.UnreportedQuarantine) as refused:
        steps.check_quarantine_reported(shop_changes, lake)

    assert str(refused.value).startswith(f"not publishing the marts: quarantined records of {topic} (1 files) under "
                                         f"s3://{lake.bucket.bucket}/quarantine/ were committed but never reported")
    assert "The next cdc_drain run reports them" in str(refused.value)

    smtp = json.loads(os.environ["AIRFLOW_CONN_SMTP_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(smtp | {"port": port}))
    reported = drain.report_quarantine(shop_changes, lake, dag_id="cdc_drain", run_id="manual__test")

    assert reported == {topic: 1}
    assert len(read_messages(maildir)) == 1
    steps.check_quarantine_reported(shop_changes, lake)  # reported: publishing may go on
    assert drain.report_quarantine(shop_changes, lake, dag_id="cdc_drain", run_id="manual__again") == {}
    assert len(read_messages(maildir)) == 1  # each record is reported once
