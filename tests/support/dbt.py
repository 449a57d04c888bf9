"""dbt on a test's lake and warehouse file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tidewater.config import REPO_ROOT
from tidewater.tables import registry

TABLES = registry().names


def dbt(*args: str, warehouse: str, lake=None, project: Path = REPO_ROOT / "dbt") -> subprocess.CompletedProcess:
    """dbt on the given lake (default: the stack's) and warehouse file (and dbt project); its target folder (compiled
    SQL, run results) beside the file."""
    env = {**os.environ, **(lake.env if lake else {}), "TIDEWATER_WAREHOUSE_PATH": warehouse,
           "DBT_PROFILES_DIR": str(REPO_ROOT / "dbt"), "DBT_TARGET_PATH": str(Path(warehouse).parent / "target")}
    return subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "dbt"), *args, "--project-dir", str(project)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=project)
