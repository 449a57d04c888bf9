"""The docs plugin only serves files inside a docs site."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from tidewater.config import Settings
from tidewater.gate import docs


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = replace(Settings.from_env({}), gx_context_dir=str(tmp_path / "gx"))
    site = docs.site_dir(settings, "gx")
    (site / "validations").mkdir(parents=True)
    (site / "index.html").write_text("index")
    (site / "validations" / "page.html").write_text("page")
    (tmp_path / "gx" / "great_expectations.yml").write_text("secret")
    return settings


def test_files_inside_a_site_are_found(settings):
    assert docs.resolve_file(settings, "gx", "").read_text() == "index"
    assert docs.resolve_file(settings, "gx", "validations/page.html").read_text() == "page"


@pytest.mark.parametrize("path", ["../../great_expectations.yml", "/etc/passwd", "validations/missing.html"])
def test_paths_outside_a_site_or_missing_are_refused(settings, path):
    assert docs.resolve_file(settings, "gx", path) is None


def test_unknown_site_is_named(settings):
    with pytest.raises(KeyError, match="no docs site 'nope'"):
        docs.site_dir(settings, "nope")


def test_docs_are_stale_once_a_gate_ran_after_they_were_built(settings):
    import json
    import os
    from datetime import UTC, datetime, timedelta

    from tidewater.gate import context
    from tidewater.gate.steps import docs_stale

    def gate_ran(at: datetime) -> None:
        run = context.validations_dir(settings) / "fct_orders" / f"publish-{at:%Y%m%dT%H%M%S%fZ}" / "run"
        run.mkdir(parents=True)
        (run / "candidate-fct_orders.json").write_text(json.dumps(
            {"meta": {"run_id": {"run_time": at.isoformat()}}, "success": True, "results": []}))

    assert not docs_stale(settings), "no gate ran yet: nothing to document"
    now = datetime.now(UTC)
    gate_ran(now - timedelta(minutes=10))
    assert docs_stale(settings), "a gate ran and the docs were never built"
    page = docs.site_dir(settings, "dbt") / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("dbt docs")
    os.utime(page, (now.timestamp() - 300, now.timestamp() - 300))
    assert not docs_stale(settings), "built after the newest gate run"
    gate_ran(now)
    assert docs_stale(settings), "a gate ran after the last build"


def test_the_docs_build_takes_the_cpu_and_the_disk_only_when_nothing_else_wants_them():
    """In a child process (the policy sticks to the thread that sets it): SCHED_IDLE and the idle I/O class, and
    what it starts inherits them."""
    import subprocess
    import sys

    probe = ("import os, psutil, subprocess, sys\n"
             "from tidewater.gate import docs\n"
             "print(docs.yield_the_cpu())\n"
             "child = 'import os, psutil; print(os.sched_getscheduler(0) == os.SCHED_IDLE, "
             "psutil.Process().ionice().ioclass == psutil.IOPRIO_CLASS_IDLE)'\n"
             "print(subprocess.run([sys.executable, '-c', child], capture_output=True, text=True).stdout.strip())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "SCHED_IDLE, idle I/O"
    assert out[1] == "True True"
    assert os.sched_getscheduler(0) != os.SCHED_IDLE, "the test process itself keeps its priority"
