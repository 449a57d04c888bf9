"""The host name Airflow records for a worker (`[core] hostname_callable`, set to `tidewater.hostname.hostname`
under the CeleryExecutor: stack/stack.sh, docker/services.yaml).

Airflow writes this name into each task instance (`ti.hostname`, shown in the UI, used to fetch a running task's
log from its worker's log server) and into each job's row. Two Celery workers on one machine would both record
the machine's name; the native stack gives each its own `TIDEWATER_WORKER_NAME` (`worker1.<host>`, ...) so a task
instance says which worker ran it. Without that variable (the scheduler, the api-server, compose's workers, which
each have a host name of their own) the name is Airflow's default, the machine's fully qualified name.

Standard library and Airflow's own `getfqdn` only: every Airflow process imports this module.
"""

from __future__ import annotations

import os

WORKER_NAME_VARIABLE = "TIDEWATER_WORKER_NAME"


def hostname() -> str:
    """`TIDEWATER_WORKER_NAME` when set and not blank, else the machine's fully qualified name (as Airflow's
    default `hostname_callable` gives it)."""
    name = os.environ.get(WORKER_NAME_VARIABLE, "").strip()
    if name:
        return name
    from airflow.utils.net import getfqdn

    return getfqdn()
