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


def test_docs_are_rebuilt_after_a_failed_gate_a_person_or_a_schedule_and_when_old(settings):
    from datetime import UTC, datetime, timedelta

    from tidewater.gate.steps import docs_due

    def due(run_type: str = "asset_triggered", gate_passed: bool = True, minutes_later: float = 0) -> bool:
        return docs_due(settings, run_type=run_type, gate_passed=gate_passed,
                        now=datetime.now(UTC) + timedelta(minutes=minutes_later))

    assert due(), "never built: due"
    page = docs.site_dir(settings, "dbt") / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text("dbt docs")
    assert not due(), "a drain-triggered run whose gate passed skips fresh docs"
    assert due(gate_passed=False)
    assert due(run_type="manual") and due(run_type="scheduled") and due(run_type="backfill")
    assert due(minutes_later=settings.docs_refresh_minutes)
