"""Tests share helpers through tests/support/ (and fixtures through conftest.py), never by importing each other."""

from __future__ import annotations

import ast

from tidewater.config import REPO_ROOT


def test_no_test_module_imports_another_test_module_or_a_conftest():
    offenders = []
    for path in sorted((REPO_ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            last = [module.rsplit(".", 1)[-1] for module in modules]
            if any(name.startswith("test_") or name == "conftest" for name in last):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == [], "import the helper from tests/support instead"
