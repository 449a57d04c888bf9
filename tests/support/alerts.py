"""What the alert tests share: a real SMTP server's port, Airflow's smtp_default pointed at it, the monitor's check
in the test's process, the HTML of a mail it kept, and waiting for something to happen."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from tidewater.alerts import sources
from tidewater.config import Settings

from .airflow import airflow_dags_test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smtp_env(port: int) -> dict[str, str]:
    """AIRFLOW_CONN_SMTP_DEFAULT pointed at the test's SMTP server on `port`."""
    smtp = json.loads(os.environ["AIRFLOW_CONN_SMTP_DEFAULT"])
    return {"AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp | {"port": port})}


def dags_test_mailing(dag_id: str, smtp_port: int, conf: dict | None = None,
                      **settings: str) -> subprocess.CompletedProcess:
    """`airflow dags test` (with `conf`) mailing to the test's SMTP server, with extra TIDEWATER_* settings."""
    return airflow_dags_test(dag_id, conf, env=settings | smtp_env(smtp_port))


def point_smtp(monkeypatch, port: int) -> None:
    """smtp_default, in this process, pointed at the test's SMTP server (as dags_test_mailing does for Airflow)."""
    for name, value in smtp_env(port).items():
        monkeypatch.setenv(name, value)


def check_in_process(lake, **env: str) -> list:
    """One check by freshness_monitor's task code, `sources.check_freshness`, in this process, with the settings
    `airflow dags test` gets from `lake.env` and `env`. Returns its transitions (one email each)."""
    monitor = lake.settings(Settings.from_env(os.environ | lake.env | env))
    return sources.check_freshness(monitor, datetime.now(UTC))


def html_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, f"no HTML body in {message['Subject']!r}"
    return part.get_content()


def wait_for(what: str, probe, timeout: float = 180, every: float = 2):
    """`probe()`'s first truthy result, tried every `every` seconds; the test fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(every)
    pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}")
