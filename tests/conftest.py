"""Shared test setup: integration tests read the settings of the stack's test instance from .stack-test/env
(`make test` starts it: stack/test.env), never the deployment's .stack/env. The session fails if the deployment,
when one runs, is not as it was before (tests/deployment_state.py)."""

from __future__ import annotations

import os

import pytest

from tidewater.config import REPO_ROOT, read_env_file

STACK_ENV = REPO_ROOT / ".stack-test" / "env"
_DEPLOYMENT = pytest.StashKey[tuple]()


def pytest_configure(config) -> None:
    # `make test` exports the same file; this lets a bare `pytest` find the test instance too.
    if STACK_ENV.exists():
        for key, value in read_env_file(STACK_ENV).items():
            os.environ.setdefault(key, value)


def pytest_sessionstart(session) -> None:
    from tests import deployment_state

    env = deployment_state.deployment_env(STACK_ENV)
    if env is not None:
        session.stash[_DEPLOYMENT] = (env, deployment_state.fingerprint(env))


def pytest_sessionfinish(session, exitstatus) -> None:
    from tests import deployment_state

    if _DEPLOYMENT not in session.stash:
        return
    env, before = session.stash[_DEPLOYMENT]
    changed = deployment_state.differences(before, deployment_state.fingerprint(env))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if changed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        lines = ["FAILED: the tests changed the deployment in .stack/:", *changed]
    else:
        reachable = [name for name, part in before.items() if not str(part).startswith("unreachable")]
        lines = [f"the deployment in .stack/ is as before the tests ({', '.join(reachable) or 'nothing running'})"]
    if reporter is not None:
        for line in lines:
            reporter.write_line(line)
