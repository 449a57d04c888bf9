"""`airflow dags test` as a user runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess

from tidewater.config import REPO_ROOT


def airflow_dags_test(dag_id: str, conf: dict | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [str(REPO_ROOT / ".venv" / "bin" / "airflow"), "dags", "test", dag_id]
    if conf:
        command += ["-c", json.dumps(conf)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ | (env or {}))
