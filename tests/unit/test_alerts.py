"""The pure side of the alerts: freshness decisions, email texts, deadline wiring, alert settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import jinja2
import pytest

from tidewater.alerts import deadlines, freshness, messages, notify
from tidewater.alerts.freshness import Measurement
from tidewater.config import ConfigError, Settings

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def marts(age: float | None, limit: float = 60) -> Measurement:
    return Measurement(key="marts", subject="published marts", value=age, limit=limit, unit="minutes old")


def lag(records: float) -> Measurement:
    return Measurement(key="lag:t", subject="lag of topic t", value=records, limit=100, unit="records behind")


def test_a_breach_is_reported_once_then_once_when_it_recovers():
    state, first = freshness.decide({}, [marts(90)], NOW)
    assert [(t.kind, t.since) for t in first] == [("breach", NOW.isoformat())]
    assert state == {"marts": {"since": NOW.isoformat(), "subject": "published marts"}}

    state, repeated = freshness.decide(state, [marts(95)], NOW + timedelta(minutes=5))
    assert repeated == []

    state, recovered = freshness.decide(state, [marts(1)], NOW + timedelta(minutes=10))
    assert [(t.kind, t.since) for t in recovered] == [("recovered", NOW.isoformat())]
    assert state == {}


def test_the_limit_itself_is_not_a_breach_and_within_it_nothing_is_sent():
    assert freshness.decide({}, [marts(60), lag(100)], NOW) == ({}, [])


def test_an_unmeasurable_value_keeps_the_state_as_it_was():
    breached = {"marts": {"since": "earlier", "subject": "published marts"}}
    assert freshness.decide(breached, [marts(None)], NOW) == (breached, [])
    assert freshness.decide({}, [marts(None)], NOW) == ({}, [])


def test_measurements_are_independent():
    state, transitions = freshness.decide({"marts": {"since": "earlier", "subject": "x"}}, [marts(1), lag(500)], NOW)
    assert [(t.kind, t.measurement.key) for t in transitions] == [("recovered", "marts"), ("breach", "lag:t")]
    assert list(state) == ["lag:t"]


def test_check_sends_one_email_per_transition_and_saves_after_each():
    saved: list[dict] = []
    sent: list[messages.Email] = []
    store = {"marts": {"since": "2026-11-25T10:00:00+00:00", "subject": "published marts"}}

    transitions = freshness.check([marts(1), lag(500)], load_state=lambda: store, save_state=saved.append,
                                  send=sent.append, now=NOW)

    assert [t.kind for t in transitions] == ["recovered", "breach"]
    assert [email.subject for email in sent] == [
        "[tidewater] RECOVERED published marts: 1 minutes old (limit 60 minutes)",
        "[tidewater] STALE lag of topic t: 500 records behind (limit 100 records)",
    ]
    assert saved == [{}, {"lag:t": {"since": NOW.isoformat(), "subject": "lag of topic t"}}]


def test_a_failed_send_saves_nothing_so_the_next_check_sends_again():
    saved: list[dict] = []

    def broken(_email):
        raise ConnectionRefusedError("smtp down")

    with pytest.raises(ConnectionRefusedError):
        freshness.check([marts(90)], load_state=dict, save_state=saved.append, send=broken, now=NOW)
    assert saved == []


def test_ages_need_aware_times():
    assert freshness.age_minutes(NOW - timedelta(minutes=90), NOW) == 90
    assert freshness.age_minutes(NOW + timedelta(minutes=1), NOW) == 0  # clock skew is not negative age
    with pytest.raises(ValueError, match="aware"):
        freshness.age_minutes(datetime(2026, 1, 1), NOW)


def test_first_lines_says_what_it_left_out():
    text = "one\n\n two\nthree\nfour\n"
    assert messages.first_lines(text, 2) == "one\n two\n… (2 more lines in the log)"
    assert messages.first_lines(text, None) == "one\n two\nthree\nfour"


def test_failure_email_names_the_task_escapes_the_error_and_links_the_log():
    email = messages.task_failure_email(dag_id="cdc_drain", run_id="manual__x", task_id="drain_topic", map_index=3,
                                        try_number=2, error="ValueError: <bad> offset\nline 2",
                                        log_url="http://ui/dags/cdc_drain/runs/manual__x/tasks/drain_topic",
                                        max_lines=20)
    assert email.subject == "[tidewater] FAILED cdc_drain.drain_topic[3]: ValueError: <bad> offset"
    assert "<pre>ValueError: &lt;bad&gt; offset\nline 2</pre>" in email.html
    assert 'href="http://ui/dags/cdc_drain/runs/manual__x/tasks/drain_topic"' in email.html
    assert "try 2" in email.html


def _context(error: BaseException) -> dict:
    ti = SimpleNamespace(dag_id="warehouse", run_id="r1", task_id="gate", map_index=-1, try_number=1,
                         log_url="http://ui/log")
    return {"ti": ti, "exception": error}


def test_a_gate_failure_email_carries_the_whole_message_other_errors_their_first_lines():
    from airflow.sdk.exceptions import AirflowFailException

    settings = Settings(alert_error_max_lines=2)
    gate = "gate failed: 3 of 40 expectations failed\n  - a\n  - b\n  - c\nData docs: http://ui/docs/x.html"
    whole = notify.failure_email(settings, _context(AirflowFailException(gate)))
    assert 'Data docs: <a href="http://ui/docs/x.html">http://ui/docs/x.html</a>' in whole.html
    assert "more lines" not in whole.html
    assert whole.subject == "[tidewater] FAILED warehouse.gate: AirflowFailException: gate failed: 3 of 40 " \
                            "expectations failed"

    cut = notify.failure_email(settings, _context(RuntimeError(gate)))
    assert "… (3 more lines in the log)" in cut.html and "Data docs" not in cut.html


def test_deadline_templates_render_with_the_context_a_deadline_callback_gets():
    email = messages.deadline_email_templates(dag_id="cdc_drain", airflow_url="http://127.0.0.1:28080/")
    context = {"dag_run": {"dag_run_id": "manual__2026-11-25T12:00:00+00:00", "queued_at": "2026-11-25T12:00:00Z",
                           "state": "queued"},
               "deadline": {"id": "d1", "deadline_time": "2026-11-25 12:20:00+00:00"}}
    render = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string

    assert render(email.subject).render(context) == \
        "[tidewater] DEADLINE missed: cdc_drain run manual__2026-11-25T12:00:00+00:00"
    html = render(email.html).render(context)
    assert "deadline <b>2026-11-25 12:20:00+00:00</b>" in html
    assert 'href="http://127.0.0.1:28080/dags/cdc_drain/runs/manual__2026-11-25T12%3A00%3A00%2B00%3A00"' in html


@pytest.mark.parametrize(("argv", "expected"), [
    (["/venv/bin/airflow", "dags", "test", "cdc_drain"], True),
    (["/venv/lib/airflow/__main__.py", "dags", "test", "warehouse", "-c", "{}"], True),
    (["/venv/bin/airflow", "dag-processor"], False),
    (["/venv/bin/airflow", "scheduler", "--skip-serve-logs"], False),
    (["/venv/bin/airflow", "dags", "list"], False),
    (["pytest", "tests/dags"], False),
])
def test_only_airflow_dags_test_parses_dags_without_deadlines(argv, expected):
    assert deadlines.without_deadlines(argv) is expected


def test_deadline_alerts_count_from_queued_at_with_the_settings_interval():
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline

    settings = Settings.from_env({"TIDEWATER_DRAIN_DEADLINE_MINUTES": "0.1"})
    [alert] = deadlines.deadline_alerts(settings, "cdc_drain", argv=["airflow", "scheduler"])
    assert isinstance(alert.reference, DagRunQueuedAtDeadline)
    assert alert.interval == timedelta(seconds=6)
    [warehouse] = deadlines.deadline_alerts(settings, "warehouse", argv=["airflow", "scheduler"])
    assert warehouse.interval == timedelta(hours=1)
    assert deadlines.deadline_alerts(settings, "cdc_drain", argv=["airflow", "dags", "test", "cdc_drain"]) is None
    with pytest.raises(ValueError, match="no deadline setting for DAG 'shop_traffic'"):
        deadlines.deadline_alerts(settings, "shop_traffic", argv=["airflow", "scheduler"])


def test_alert_settings_from_env_and_their_errors():
    settings = Settings.from_env({"TIDEWATER_ALERT_EMAIL_TO": "a@example.com, b@example.com",
                                  "AIRFLOW__API__BASE_URL": "http://ui:8080/",
                                  "TIDEWATER_FRESHNESS_MAX_TOPIC_LAG": "5"})
    assert settings.alert_recipients == ["a@example.com", "b@example.com"]
    assert settings.airflow_url == "http://ui:8080"
    assert settings.freshness_max_topic_lag == 5
    assert Settings().alert_recipients == ["data-team@tidewater.invalid"]
    with pytest.raises(ConfigError, match="TIDEWATER_ALERT_EMAIL_TO='data-team'"):
        _ = Settings(alert_email_to="data-team").alert_recipients
    with pytest.raises(ConfigError, match="TIDEWATER_FRESHNESS_MAX_MART_AGE_MINUTES='soon'"):
        Settings.from_env({"TIDEWATER_FRESHNESS_MAX_MART_AGE_MINUTES": "soon"})
