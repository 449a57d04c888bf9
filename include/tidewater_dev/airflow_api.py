"""A small client for the running Airflow's REST API (v2), logged in as the stack's admin user: the tests
and the benchmarks that drive the real scheduler use it."""

from __future__ import annotations

import os
import time

import requests


class AirflowApi:
    """The running Airflow's REST API (v2), logged in as the stack's admin user."""

    def __init__(self) -> None:
        self.base_url = os.environ["AIRFLOW__API__BASE_URL"].rstrip("/")
        self._login = {"username": os.environ["TIDEWATER_AIRFLOW_ADMIN_USER"],
                       "password": os.environ["TIDEWATER_AIRFLOW_ADMIN_PASSWORD"]}
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            response = requests.post(f"{self.base_url}/auth/token", json=self._login, timeout=30)
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs):
        response = requests.request(method, f"{self.base_url}/api/v2/{path.lstrip('/')}",
                                    headers={"Authorization": f"Bearer {self.token()}"}, timeout=60, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout_s: float = 180) -> dict:
        """The DAG once the dag-processor has parsed it (a freshly started Airflow knows no DAG yet)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.request("GET", f"dags/{dag_id}")
            except requests.HTTPError as error:
                if error.response.status_code != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(3)
