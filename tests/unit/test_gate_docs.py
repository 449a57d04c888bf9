"""The docs plugin only serves files inside a docs site."""

from __future__ import annotations

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
