"""Readies the process Airflow forks its task processes from (the forkserver imports this module last).

Every dbt task is a fresh fork of that process, and paid two costs that are not its work (~0.8 s of ~2 s):
- dbt's first command in a process runs ~0.5 s longer than later ones (lazy imports, serializer code
  generation, Jinja environments). `dbt parse` runs twice (full, then partial) on a throwaway one-model
  project here, so the forks inherit a warm dbt.
- Python's garbage collector: the first full collection in a fork walked every object the forkserver had
  imported (Airflow, dbt, Cosmos, GX, pyarrow): ~0.5 s, once or twice per task. `gc.freeze()` moves them out
  of the collector's reach, as the gc documentation advises for processes that fork without exec.

It connects to no database, reads nothing of the real project and imports nothing else of tidewater, so code
changes still reach tasks without a scheduler restart. What must not run here is what cannot be forked: a
DuckDB connection (its threads) and dbt's static parser (dbt-extractor, Rust): once used in the parent, a
forked child's full parse hangs in it for good. A failure is logged and ignored: this is an optimisation,
never a reason for a task to fail.
"""

from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_WARM_UP_PROJECT = {
    "dbt_project.yml": "name: warmup\nversion: '1.0'\nprofile: warmup\nflags:\n  send_anonymous_usage_stats: false\n",
    "profiles.yml": "warmup:\n  target: memory\n  outputs:\n    memory:\n      type: duckdb\n      path: ':memory:'\n",
    "models/warmup.sql": "select 1 as warmed",
    "models/warmup.yml": "version: 2\nmodels:\n  - name: warmup\n    columns:\n      - name: warmed\n"
                         "        data_tests: [not_null]\n",
}


def warm_up_dbt() -> bool:
    """Runs `dbt parse` twice on a throwaway project; True when both succeeded."""
    from dbt.cli.main import dbtRunner

    with tempfile.TemporaryDirectory(prefix="tidewater-dbt-warmup-") as project:
        for name, text in _WARM_UP_PROJECT.items():
            path = Path(project, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        args = ["parse", "--quiet", "--no-write-json", "--no-static-parser", "--project-dir", project,
                "--profiles-dir", project, "--log-path", str(Path(project, "logs")),
                "--target-path", str(Path(project, "target"))]
        return all(dbtRunner().invoke(args).success for _ in range(2))


def freeze_heap() -> None:
    """Collects what is garbage now and freezes the rest (gc.get_freeze_count() tells how many)."""
    gc.collect()
    gc.freeze()


try:
    if not warm_up_dbt():
        log.warning("dbt warm-up did not succeed; dbt tasks start cold")
except Exception:  # an optimisation must not break the process that imports it
    log.warning("dbt warm-up failed; dbt tasks start cold", exc_info=True)
freeze_heap()
