"""Deadline Alerts (Airflow 3's replacement for SLAs) for the DAGs that must finish in time.

A run not finished within its DAG's limit of being queued gets one email (SmtpNotifier, sent by the
triggerer) naming the DAG, the run, the deadline and a link to the run.

The limit comes from the ``TIDEWATER_*_DEADLINE_MINUTES`` settings when the DAG is parsed (a fixed interval
in the serialized DAG). Not an Airflow ``VariableInterval``: Airflow 3.3 resolves those inside the
scheduler's locked session, where reading the Variable fails ("UNEXPECTED COMMIT"), so every run the
scheduler creates (scheduled, asset-triggered) crashed the scheduler; runs triggered through the API did not.

``airflow dags test`` cannot run a DAG with deadlines (Airflow 3.3 fails the finished run with "'dict' object
has no attribute 'hex'", and it never sets the queued time they count from), so DAGs parsed by that command
get none: see `without_deadlines`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from tidewater.alerts.messages import deadline_email_templates
from tidewater.config import Settings


def deadline_minutes(settings: Settings) -> dict[str, float]:
    """The DAGs that have a deadline, and its length."""
    return {"cdc_drain": settings.drain_deadline_minutes, "warehouse": settings.warehouse_deadline_minutes}


def without_deadlines(argv: Sequence[str]) -> bool:
    """True in the process of ``airflow dags test`` (also ``python -m airflow dags test``): the CLI parses the
    DAG file in its own process, so its arguments say which command parsed it. The scheduler, the
    dag-processor and the task runners never run with these arguments."""
    return list(argv[1:3]) == ["dags", "test"]


def deadline_alerts(settings: Settings, dag_id: str, argv: Sequence[str] | None = None) -> list[Any] | None:
    """The `deadline=` of a DAG: one alert on the time the run was queued, or None under `airflow dags test`."""
    if dag_id not in deadline_minutes(settings):
        raise ValueError(f"no deadline setting for DAG {dag_id!r}: add it to tidewater.alerts.deadlines."
                         "deadline_minutes")
    if without_deadlines(sys.argv if argv is None else argv):
        return None
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    email = deadline_email_templates(dag_id=dag_id, airflow_url=settings.airflow_url)
    return [DeadlineAlert(
        name=f"{dag_id} not finished in time",
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=deadline_minutes(settings)[dag_id]),
        callback=AsyncCallback(SmtpNotifier, kwargs={
            "smtp_conn_id": settings.smtp_conn_id, "to": settings.alert_recipients,
            "subject": email.subject, "html_content": email.html,
        }),
    )]

