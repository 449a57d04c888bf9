"""Shared test setup: integration tests read the native stack's settings from .stack/env."""

from __future__ import annotations

import os

from tidewater.config import REPO_ROOT, read_env_file

STACK_ENV = REPO_ROOT / ".stack" / "env"


def pytest_configure(config) -> None:
    # `make test` exports the same file; this lets a bare `pytest` find the stack too.
    if STACK_ENV.exists():
        for key, value in read_env_file(STACK_ENV).items():
            os.environ.setdefault(key, value)
