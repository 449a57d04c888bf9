"""Sending alert emails through Airflow's smtp provider (the ``smtp_default`` connection by default)."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from tidewater.alerts.messages import Email, task_failure_email
from tidewater.config import Settings

log = logging.getLogger(__name__)


class UpstreamFailed(AirflowFailException):
    """Fails a task, without retries, because tasks before it failed, which mailed their own alerts: it sends none."""


def send(settings: Settings, email: Email) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=settings.smtp_conn_id) as smtp:
        smtp.send_email_smtp(to=settings.alert_recipients, subject=email.subject, html_content=email.html)


def failure_email(settings: Settings, context: dict[str, Any]) -> Email:
    """The email for a task's final failure, from its callback context."""
    ti = context["ti"]
    error = context.get("exception")
    text = f"{type(error).__name__}: {error}" if error is not None else "the task failed without an exception"
    # AirflowFailException is how Tidewater fails on purpose (e.g. the gate): its whole message is for people.
    complete = isinstance(error, AirflowFailException)
    return task_failure_email(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index,
                              try_number=ti.try_number, error=text, log_url=ti.log_url,
                              max_lines=None if complete else settings.alert_error_max_lines)


def on_task_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of every Tidewater task: runs once, after the last retry has failed; mails nothing
    for UpstreamFailed."""
    if isinstance(context.get("exception"), UpstreamFailed):
        return
    settings = Settings.from_env()
    try:
        send(settings, failure_email(settings, context))
    except Exception:  # the task has failed already; a mail outage must not hide why
        log.exception("could not send the failure email (smtp connection %r)", settings.smtp_conn_id)
