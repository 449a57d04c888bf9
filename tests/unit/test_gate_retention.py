"""Which gate runs' validation results (and data docs pages) the data docs keep: each suite's newest
`gate_keep_runs`, failed runs until `marts_keep_hours`, and always the newest run."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tidewater.config import Settings
from tidewater.gate import context, docs, stage

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _run(settings: Settings, suite: str, age: timedelta, success: bool) -> str:
    run = f"publish-{stage.new_publication_id(NOW - age)}"
    result = context.validations_dir(settings) / suite / run / "20261207T000000.000000Z" / f"candidate-{suite}.json"
    result.parent.mkdir(parents=True)
    result.write_text(json.dumps({"success": success}))
    page = docs.site_dir(settings, "gx") / "validations" / suite / run / "page.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html></html>")
    return run


def _kept(settings: Settings, suite: str) -> list[str]:
    return sorted(path.name for path in (context.validations_dir(settings) / suite).glob("publish-*"))


def test_passed_runs_beyond_the_newest_few_go_failed_ones_stay_until_the_keep_time(tmp_path: Path):
    settings = replace(Settings.from_env({}), gx_context_dir=str(tmp_path), gate_keep_runs=3, marts_keep_hours=24)
    passed = [_run(settings, "fct_orders", timedelta(minutes=m), True) for m in (50, 40, 30, 20, 10)]
    failed = _run(settings, "fct_orders", timedelta(minutes=45), False)
    expired_failure = _run(settings, "fct_orders", timedelta(hours=25), False)
    other_suite = [_run(settings, "dim_customer", timedelta(hours=h), True) for h in (30, 26)]

    pruned = context.prune_validations(settings, now=NOW)

    assert _kept(settings, "fct_orders") == sorted([failed, *passed[-3:]])
    assert _kept(settings, "dim_customer") == [other_suite[-1]], "past the keep time, but the suite's newest"
    assert pruned == len({*passed[:2], expired_failure, other_suite[0]})
    pages = docs.site_dir(settings, "gx") / "validations" / "fct_orders"
    assert sorted(path.name for path in pages.iterdir()) == _kept(settings, "fct_orders"), "pages go with them"
