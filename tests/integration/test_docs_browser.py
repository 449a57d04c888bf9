"""The docs in a real browser (Debian's chromium, Playwright), through the running api-server's docs plugin: the
landing page lists the gate's newest validations, and the GX pages render from the pinned copies of their scripts
and styles: no request fails, none leaves 127.0.0.1, the validation table has rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.support.browser import logged_in_page
from tests.support.dbt import dbt
from tidewater.gate import context, docs, stage
from tidewater.gate.suites import FRESHNESS

PREFIX = "/tidewater-docs"


@pytest.fixture(scope="module")
def validated(settings):
    """A validation of the freshness checkpoint stored in the instance's GX context (a fresh change: it passes), and
    the data docs rendered; its run name."""
    from great_expectations.core.run_identifier import RunIdentifier

    context.ensure_built(settings)
    gx = context.open_context(settings)
    run_name = f"publish-{stage.new_publication_id()}"  # as the gate names its runs
    frame = pd.DataFrame({"newest_change_at": [datetime.now(UTC)], "newest_change_age_hours": [0.05]})
    result = gx.checkpoints.get(context.checkpoint_name(FRESHNESS)).run(
        batch_parameters={"dataframe": frame}, expectation_parameters=context.expectation_parameters(settings),
        run_id=RunIdentifier(run_name=run_name, run_time=datetime.now(UTC)))
    assert result.success
    context.update_data_docs(settings)
    return run_name


def _clean(traffic) -> None:
    assert traffic.failed == [], traffic.failed
    assert traffic.remote() == [], traffic.remote()
    assert traffic.console_errors == [], traffic.console_errors


def test_landing_page_lists_the_newest_validation_of_each_checkpoint(browser, airflow_api, settings, validated):
    with logged_in_page(browser, airflow_api) as (page, traffic):
        page.goto(f"{airflow_api.base_url}{PREFIX}/", wait_until="networkidle")
        rows = page.locator("tbody tr")
        freshness = rows.filter(has_text=context.checkpoint_name(FRESHNESS))

        assert rows.count() == len(context.latest_validations(settings)) >= 1
        assert freshness.count() == 1
        assert validated in freshness.inner_text() and "passed" in freshness.inner_text()
        with page.expect_navigation(wait_until="networkidle"):
            freshness.get_by_role("link").click()
        assert page.url.startswith(f"{airflow_api.base_url}{PREFIX}/gx/validations/freshness/{validated}/")
        assert page.locator("text=Great Expectations").count() + page.locator("img[alt='Great Expectations']").count()
        _clean(traffic)


def test_gx_index_renders_offline_with_its_validation_table(browser, airflow_api, validated):
    with logged_in_page(browser, airflow_api) as (page, traffic):
        page.goto(f"{airflow_api.base_url}{PREFIX}/gx/index.html", wait_until="networkidle")
        validation_rows = page.locator("#Validation-Results tbody tr[data-index]")
        validation_rows.first.wait_for(state="attached", timeout=10_000)

        assert validation_rows.count() >= 1
        assert page.locator("#Validation-Results tbody").inner_text().count(validated) >= 1
        # bootstrap's styles applied: a served, pinned copy (an unstyled page has the browser's default 8 px margin)
        assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
        assert any(url.startswith(f"{airflow_api.base_url}{PREFIX}/vendor/") for url in traffic.urls)
        assert not [url for url in traffic.urls if "great-expectations-web-assets" in url or "dataContextId" in url]
        _clean(traffic)


@pytest.fixture(scope="module")
def dbt_docs(settings, tmp_path_factory):
    """The instance's dbt docs site. Where no warehouse run built it yet, built from the project alone in a subprocess
    (`dbt parse`, `dbt docs generate --no-compile --empty-catalog`): neither the warehouse file nor the lake is
    opened, so nothing here holds a lock a later warehouse run needs."""
    site = docs.site_dir(settings, "dbt")
    if not docs.resolve_file(settings, "dbt", "index.html"):
        unused = str(tmp_path_factory.mktemp("dbt-docs") / "never-opened.duckdb")
        for args in (("parse",), ("docs", "generate", "--no-compile", "--empty-catalog")):
            run = dbt(*args, "--target-path", str(site), warehouse=unused)
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert not Path(unused).exists()
    return site


def test_dbt_docs_render_offline(browser, airflow_api, dbt_docs):
    with logged_in_page(browser, airflow_api) as (page, traffic):
        page.goto(f"{airflow_api.base_url}{PREFIX}/dbt/index.html", wait_until="networkidle")
        page.get_by_text("Welcome to the auto-generated documentation").wait_for(timeout=15_000)
        project_tree = page.locator(".menu[ng-show=\"nav_selected == 'project'\"]").inner_text()

        # the project, the shop's package and the lake's source, from the manifest
        words = project_tree.split()
        assert words[:3] == ["Sources", "shop", "Projects"] and sorted(words[3:]) == ["shop", "tidewater"]
        fetched = {name for name in ("manifest.json", "catalog.json") if any(f"/dbt/{name}" in u for u in traffic.urls)}
        assert fetched == {"manifest.json", "catalog.json"}
        assert traffic.remote() == [], traffic.remote()
        # dbt-docs' own page asks for two URLs it never renders (an Angular `{{ getIcon(...) }}` img src before
        # compilation, a webpack `${require(...)}` favicon): those 404 on any server; nothing else may fail.
        assert [failure for failure in traffic.failed if "%7B%7B" not in failure and "$%7Brequire" not in failure] == []
