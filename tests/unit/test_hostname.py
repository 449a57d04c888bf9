"""tidewater.hostname, Airflow's hostname_callable under the CeleryExecutor: each native worker's own name, else the
machine's."""

from __future__ import annotations

from airflow.utils.net import getfqdn

from tidewater import hostname


def test_a_worker_records_its_own_name(monkeypatch):
    monkeypatch.setenv(hostname.WORKER_NAME_VARIABLE, "worker2.example")
    assert hostname.hostname() == "worker2.example"


def test_without_a_worker_name_it_is_the_machines_name_as_airflow_gives_it(monkeypatch):
    monkeypatch.setenv(hostname.WORKER_NAME_VARIABLE, " ")
    assert hostname.hostname() == getfqdn()
    monkeypatch.delenv(hostname.WORKER_NAME_VARIABLE)
    assert hostname.hostname() == getfqdn()
