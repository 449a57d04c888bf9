"""Great Expectations glue: the file context in great_expectations/ and the gate's checkpoint runs.

GX is imported inside these functions only: importing it takes seconds and logs a lot, and DAG files
(parsed every few seconds) import this package.

Engine: pandas. Each batch is a DataFrame read from the candidate with DuckDB and handed to a pandas
dataframe asset at run time. GX's SQL engine would need the duckdb-engine dialect (a new dependency) and a
patch of a private GX constant to keep its DuckDB connection open; the pandas path needs neither and costs
a small share of the dbt build (docs/benchmarks.md, "Gate"). A dataframe is a per-run batch parameter that
GX passes to every validation definition of a checkpoint, so each batch has its own checkpoint; one gate
run (one publish) runs them all under one run name. Their data docs pages are rendered afterwards, off the
critical path (`update_data_docs`, run by the data_docs DAG): rendering costs four times the validations. A
failed run renders its own pages at once: its alert links to them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from tidewater import sqltext
from tidewater.config import Settings
from tidewater.gate import docs
from tidewater.gate.report import GateReport, summarise
from tidewater.gate.suites import Batch, batches

DATASOURCE = "candidate"
BATCH_DEFINITION = "whole"
DOCS_SITE = docs.SITES["gx"]


def checkpoint_name(batch: Batch) -> str:
    return f"publish_{batch.name}"


def open_context(settings: Settings):
    """The committed file context (its root is settings.gx_context_dir, great_expectations/ by default)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage statistics leave this machine
    # GX logs each configuration step at INFO: hundreds of lines per run in the task log.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    root = Path(settings.gx_context_dir)
    if not (root / "great_expectations.yml").exists():
        raise FileNotFoundError(f"{root}/great_expectations.yml is missing (TIDEWATER_GX_CONTEXT_DIR): "
                                "point the setting at the repository's great_expectations/ folder")
    return gx.get_context(mode="file", context_root_dir=str(root))


def definitions_fingerprint(settings: Settings) -> str:
    """A digest of every batch's name, SQL and expectations: what the context's GX files are built from."""
    text = json.dumps([[b.name, b.sql, [[e.type, e.kwargs] for e in b.expectations]] for b in batches(settings)],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_built(settings: Settings) -> None:
    """Builds the suites, validation definitions and checkpoints from the gate's batches when the context
    does not hold this code's (a new checkout, or the suites changed): they are never committed files. A lock
    keeps two gate runs from building at once."""
    root = Path(settings.gx_context_dir)
    marker = root / "uncommitted" / "suites.sha256"
    fingerprint = definitions_fingerprint(settings)
    if marker.exists() and marker.read_text() == fingerprint:
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    with (root / "uncommitted" / "suites.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == fingerprint:
            return
        sync(settings)
        marker.write_text(fingerprint)


def sync(settings: Settings) -> None:
    """Writes suites, validation definitions and checkpoints for every gate batch into the context (git-ignored:
    built from the code at run time, ensure_built)."""
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    import great_expectations as gx

    context = open_context(settings)
    for name in [c.name for c in context.checkpoints.all()]:
        context.checkpoints.delete(name)
    for name in [v.name for v in context.validation_definitions.all()]:
        context.validation_definitions.delete(name)
    for name in [s.name for s in context.suites.all()]:
        context.suites.delete(name)
    # The datasource and its assets stay as great_expectations.yml has them (their ids too, so building leaves the
    # committed file as it is); only missing assets are added and stale ones removed.
    datasource = (context.data_sources.get(DATASOURCE) if DATASOURCE in context.data_sources.all()
                  else context.data_sources.add_pandas(DATASOURCE))
    every = batches(settings)
    names = {batch.name for batch in every}
    for asset in [asset.name for asset in datasource.assets if asset.name not in names]:
        datasource.delete_asset(asset)
    present = {asset.name for asset in datasource.assets}
    for batch in every:
        if batch.name in present:
            definition = datasource.get_asset(batch.name).get_batch_definition(BATCH_DEFINITION)
        else:
            definition = datasource.add_dataframe_asset(batch.name).add_batch_definition_whole_dataframe(
                BATCH_DEFINITION)
        suite = ExpectationSuite(name=batch.name, meta={"sql": batch.sql})
        for expectation in batch.expectations:
            suite.add_expectation_configuration(ExpectationConfiguration(type=expectation.type,
                                                                         kwargs=expectation.kwargs))
        suite = context.suites.add(suite)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=batch.name, data=definition, suite=suite))
        context.checkpoints.add(gx.Checkpoint(
            name=checkpoint_name(batch), validation_definitions=[validation], result_format="SUMMARY", actions=[]))


def expectation_parameters(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    today = (now or datetime.now(UTC)).date()
    return {"max_date_key": int((today + timedelta(days=1)).strftime("%Y%m%d")),
            "max_change_age_hours": settings.gate_max_change_age_hours}


# pandas has no infinite date or timestamp (PostgreSQL has, and the lake keeps them: docs/lake.md). A batch shows
# them as the extreme values pandas can hold, so an expectation on the column sees an extreme value, not a crash.
_INFINITY_STAND_INS = {"DATE": ("DATE '9999-12-31'", "DATE '0001-01-01'"),
                       "TIMESTAMP": ("TIMESTAMP '9999-12-31 23:59:59'", "TIMESTAMP '0001-01-01 00:00:00'"),
                       "TIMESTAMP WITH TIME ZONE": ("TIMESTAMPTZ '9999-12-31 23:59:59+00'",
                                                    "TIMESTAMPTZ '0001-01-01 00:00:00+00'")}


def batch_frame(con: duckdb.DuckDBPyConnection, sql: str):
    """A batch's rows as a pandas DataFrame; ±infinity dates and timestamps as the latest / earliest stand-ins."""
    relation = con.sql(sql)
    replaced = []
    for name, kind in zip(relation.columns, relation.types, strict=True):
        if str(kind) in _INFINITY_STAND_INS:
            latest, earliest = _INFINITY_STAND_INS[str(kind)]
            column = sqltext.identifier(name)
            replaced.append(f"case when isinf({column}) then (case when {column} > {latest} then {latest} "
                            f"else {earliest} end) else {column} end as {column}")
    if replaced:
        relation = con.sql(f"select * replace ({', '.join(replaced)}) from ({sql})")
    return without_pandas_na(relation.df())


def read_batches(settings: Settings, candidate: Path) -> dict[str, Any]:
    """Every gate batch as a pandas DataFrame, read from the candidate file."""
    with duckdb.connect(str(candidate), read_only=True) as con:
        return {batch.name: batch_frame(con, batch.sql) for batch in batches(settings)}


def without_pandas_na(frame):
    """Columns whose missing value is `pd.NA` (DuckDB's choice for integers with nulls) as objects holding None;
    the others as they are (timestamps keep NaT).

    GX's pair expectations compare values with `==`, and `pd.NA == 1` is neither true nor false: the
    metric would raise instead of counting the row as unexpected. (Objects cost: GX fingerprints every batch,
    and hashed a nullable timestamp column as objects in ~15 µs a row.)
    """
    import pandas as pd

    for column in frame.columns:
        if getattr(frame[column].dtype, "na_value", None) is pd.NA and frame[column].hasnans:
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    return frame


def _page_file(context, identifier) -> str:
    """The file of a validation's data docs page (it may not be rendered yet)."""
    [site] = context.get_docs_sites_urls(resource_identifier=identifier, site_name=DOCS_SITE, only_if_exists=False)
    return site["site_url"].removeprefix("file://")


def docs_page(settings: Settings, context, identifier) -> str:
    """Where a validation's data docs page is: in the Airflow UI (the docs plugin) and on disk."""
    path = _page_file(context, identifier)
    relative = os.path.relpath(path, docs.site_dir(settings, "gx"))
    return f"{settings.docs_url}/gx/{relative} (file {path})"


@dataclass(frozen=True)
class LatestValidation:
    """The newest validation of one checkpoint: its result and its data docs page (relative to the GX site)."""

    checkpoint: str
    suite: str
    run_name: str
    run_time: datetime
    success: bool
    evaluated: int
    successful: int
    page: str


def latest_validations(settings: Settings) -> list[LatestValidation]:
    """The newest stored validation result of each expectation suite (the gate runs one checkpoint per suite),
    sorted by checkpoint name; empty before the first gate run."""
    context = open_context(settings)
    store = context.validation_results_store
    newest: dict[str, Any] = {}
    for key in store.list_keys():
        suite = key.expectation_suite_identifier.name
        if suite not in newest or key.run_id.run_time > newest[suite].run_id.run_time:
            newest[suite] = key
    checkpoints = {checkpoint.id: checkpoint.name for checkpoint in context.checkpoints.all()}
    site = docs.site_dir(settings, "gx")
    found = []
    for suite, key in newest.items():
        result = store.get(key)
        statistics = result.statistics
        found.append(LatestValidation(
            checkpoint=checkpoints.get(result.meta.get("checkpoint_id"), f"(a removed checkpoint of {suite})"),
            suite=suite, run_name=key.run_id.run_name, run_time=key.run_id.run_time, success=bool(result.success),
            evaluated=int(statistics.get("evaluated_expectations", 0)),
            successful=int(statistics.get("successful_expectations", 0)),
            page=os.path.relpath(_page_file(context, key), site)))
    return sorted(found, key=lambda validation: validation.checkpoint)


def validate(settings: Settings, publication_id: str, candidate: Path) -> GateReport:
    """Runs every batch's checkpoint on the candidate and summarises. A failed run's data docs pages are rendered
    at once (its failure message links to them); a passed run's are left to `update_data_docs`."""
    from great_expectations.core.run_identifier import RunIdentifier

    frames = read_batches(settings, candidate)
    ensure_built(settings)
    context = open_context(settings)
    run_id = RunIdentifier(run_name=f"publish-{publication_id}", run_time=datetime.now(UTC))
    parameters = expectation_parameters(settings)
    validations, pages, identifiers = [], {}, []
    for batch in batches(settings):
        result = context.checkpoints.get(checkpoint_name(batch)).run(
            batch_parameters={"dataframe": frames[batch.name]}, expectation_parameters=parameters, run_id=run_id)
        for identifier, validation in result.run_results.items():
            validations.append(validation.to_json_dict())
            pages[batch.name] = docs_page(settings, context, identifier)
            identifiers.append(identifier)
    report = summarise(publication_id, validations, pages)
    if not report.success:
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=identifiers)
    return report


def update_data_docs(settings: Settings) -> int:
    """Deletes the validation results older than the retention (prune_validations), renders the ones that have no
    data docs page yet, and the index; returns how many were rendered.

    Rendering costs four times the validations themselves, so a gate that passed leaves it to the data_docs DAG.
    """
    ensure_built(settings)
    pruned = prune_validations(settings)
    context = open_context(settings)
    missing = []
    for key in context.validation_results_store.list_keys():
        [site] = context.get_docs_sites_urls(resource_identifier=key, site_name=DOCS_SITE, only_if_exists=False)
        if not Path(site["site_url"].removeprefix("file://")).exists():
            missing.append(key)
    if not (docs.site_dir(settings, "gx") / "index.html").exists():
        context.build_data_docs(site_names=[DOCS_SITE])
    elif missing or pruned:
        # GX renders every page when given no identifiers: with none missing, one suite's page (the index with it).
        context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=missing or [
            context.expectations_store.list_keys()[0]])
    return len(missing)


def prune_validations(settings: Settings, now: datetime | None = None) -> int:
    """Deletes the validation results of gate runs, with their data docs pages: beyond each suite's newest
    ``gate_keep_runs``, those that passed, and those older than ``marts_keep_hours`` (their publications have
    expired or are about to: tidewater.gate.publish.retain); each suite's newest run always stays. Returns how
    many runs' results were deleted. The next `update_data_docs` drops them from the index."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=settings.marts_keep_hours)
    pages = docs.site_dir(settings, "gx") / "validations"
    pruned: set[str] = set()
    for suite in (path for path in validations_dir(settings).glob("*") if path.is_dir()):
        runs = sorted(path for path in suite.glob("publish-*") if path.is_dir())  # publication ids sort by time
        kept = runs[-settings.gate_keep_runs:]
        for run in runs[:-1]:
            if _publication_time(run.name.removeprefix("publish-")) < cutoff or (run not in kept and _passed(run)):
                shutil.rmtree(run)
                shutil.rmtree(pages / suite.name / run.name, ignore_errors=True)  # never rendered, or rendered
                pruned.add(run.name)
    return len(pruned)


def _passed(run: Path) -> bool:
    """Whether every validation result of a suite's gate run (``publish-<id>/<time>/<batch>.json``) succeeded."""
    results = list(run.glob("*/*.json"))
    return bool(results) and all(json.loads(result.read_text()).get("success") is True for result in results)


def _publication_time(publication_id: str) -> datetime:
    """When a gate run began, from its publication id (tidewater.gate.stage.new_publication_id)."""
    return datetime.strptime(publication_id, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def validations_dir(settings: Settings) -> Path:
    """Where the context's validation results store keeps its JSON (great_expectations.yml:
    ``<suite>/publish-<publication id>/<run time>/<batch>.json``)."""
    return Path(settings.gx_context_dir) / "uncommitted" / "validations"


def latest_report(settings: Settings) -> tuple[GateReport, datetime] | None:
    """The newest gate run's report (publication ids sort by time) and when it ran, read from the validation results
    store's files without GX (importing it takes seconds); None before the first gate run. No data docs pages."""
    runs = [path for path in validations_dir(settings).glob("*/publish-*") if path.is_dir()]
    if not runs:
        return None
    newest = max(path.name for path in runs)
    files = sorted(validations_dir(settings).glob(f"*/{newest}/*/*.json"))
    validations = [json.loads(file.read_text()) for file in files]
    ran_at = max((datetime.fromisoformat(v["meta"]["run_id"]["run_time"]) for v in validations
                  if v.get("meta", {}).get("run_id", {}).get("run_time")), default=None)
    if ran_at is None:
        raise ValueError(f"gate run {newest} in {validations_dir(settings)}: no validation result names its run time")
    return summarise(newest.removeprefix("publish-"), validations, {}), ran_at
