"""The documentation sites: GX data docs (built by every gate run) and dbt docs, side by side.

Both live under ``<gx_context_dir>/uncommitted/data_docs/`` (git-ignored): ``local_site/`` is GX's,
``dbt/`` is ``dbt docs generate``'s output. The Airflow plugin in plugins/ serves them to logged-in users;
each build is also copied to ``s3://<bucket>/docs/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tidewater.config import ConfigError, Settings

SITES = {"gx": "local_site", "dbt": "dbt"}
LAKE_PREFIX = "docs"
# What dbt docs needs to render offline.
DBT_DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


def docs_root(settings: Settings) -> Path:
    return Path(settings.gx_context_dir) / "uncommitted" / "data_docs"


def site_dir(settings: Settings, site: str) -> Path:
    if site not in SITES:
        raise KeyError(f"no docs site {site!r}; known: {', '.join(SITES)}")
    return docs_root(settings) / SITES[site]


def resolve_file(settings: Settings, site: str, relative: str) -> Path | None:
    """A file inside a site, or None (missing, or a path that would leave the site)."""
    root = site_dir(settings, site).resolve()
    path = (root / (relative or "index.html")).resolve()
    if path.is_dir():
        path = path / "index.html"
    return path if path.is_relative_to(root) and path.is_file() else None


def generate_dbt_docs(settings: Settings) -> Path:
    """Runs `dbt docs generate` into the dbt site (opens the warehouse: hold the warehouse pool's slot).

    A separate process: dbt-duckdb keeps the DuckDB file open in the process that ran it.
    """
    target = site_dir(settings, "dbt")
    project = Path(settings.dbt_project_dir)
    env = {**os.environ, "DBT_PROFILES_DIR": str(project), "TIDEWATER_WAREHOUSE_PATH": settings.warehouse_path,
           "TIDEWATER_LAKE_BUCKET": settings.lake_bucket}
    dbt = Path(sys.executable).with_name("dbt")
    run = subprocess.run([str(dbt), "docs", "generate", "--project-dir", str(project), "--target-path", str(target),
                          "--quiet"], capture_output=True, text=True, env=env, cwd=project, timeout=900)
    if run.returncode != 0:
        raise ConfigError(f"dbt docs generate failed ({run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")
    return target / "index.html"


def copy_to_lake(settings: Settings, lake) -> int:
    """Copies both sites to s3://<bucket>/docs/<site>/ (dbt: only the files its page needs)."""
    copied = 0
    for site in SITES:
        root = site_dir(settings, site)
        files = [root / name for name in DBT_DOCS_FILES] if site == "dbt" else sorted(root.rglob("*"))
        for path in files:
            if path.is_file():
                key = f"{LAKE_PREFIX}/{site}/{path.relative_to(root).as_posix()}"
                lake.client.upload_file(str(path), lake.bucket, key)
                copied += 1
    return copied
