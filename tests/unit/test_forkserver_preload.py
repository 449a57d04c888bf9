"""tidewater.forkserver_preload runs in the forkserver every Airflow task process is forked from: it must leave
a frozen heap and a warm dbt, and nothing that breaks dbt in a fork (seen: `dbt docs generate` hung for good in
dbt's static parser, parsing this project, after the parent had used that parser)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tidewater.config import REPO_ROOT

FORKED_PARSE = textwrap.dedent("""
    import gc, os, shutil, signal, sys, tempfile, threading
    from pathlib import Path

    import tidewater.forkserver_preload as preload
    from dbt.cli.main import dbtRunner

    assert gc.get_freeze_count() > 100_000, f"only {gc.get_freeze_count()} objects frozen"
    assert preload.warm_up_dbt(), "the warm-up's dbt parse failed"
    assert threading.active_count() == 1, f"threads left in the parent: {threading.enumerate()}"

    project = Path(tempfile.mkdtemp()) / "dbt"
    shutil.copytree(sys.argv[1], project, ignore=shutil.ignore_patterns("target", "logs"))
    child = os.fork()
    if child == 0:
        signal.alarm(60)  # a hang ends the child with SIGALRM instead of the test run
        result = dbtRunner().invoke(["parse", "--quiet", "--no-write-json", "--no-partial-parse", "--static-parser",
                                     "--project-dir", str(project), "--profiles-dir", str(project)])
        os._exit(0 if result.success else 3)
    _, status = os.waitpid(child, 0)
    shutil.rmtree(project.parent)
    sys.exit(os.waitstatus_to_exitcode(status))
""")


def test_a_process_forked_after_the_preload_parses_the_project_with_the_static_parser():
    done = subprocess.run([sys.executable, "-c", FORKED_PARSE, str(REPO_ROOT / "dbt")], capture_output=True, text=True,
                          timeout=300)

    assert done.returncode == 0, (
        f"dbt parse in a fork after the preload: exit {done.returncode} (-14: hung until the alarm)\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
