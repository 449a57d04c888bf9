"""The gate's steps as the DAGs run them: gate (stage + validate) and publish (warehouse), docs (data_docs)."""

from __future__ import annotations

from pathlib import Path

from tidewater.config import Settings
from tidewater.gate import context, docs, publish, stage
from tidewater.gate.report import GateFailed, GateReport
from tidewater.lake import Lake


def run_gate(settings: Settings, publication_id: str | None = None) -> GateReport:
    """Stages a candidate from the warehouse and validates it; a failed candidate is discarded and raises.

    Holds the warehouse only while copying the marts out (callers hold the warehouse pool's slot).
    """
    publication_id = publication_id or stage.new_publication_id()
    try:
        candidate = stage.stage_candidate(settings, publication_id)
        report = context.validate(settings, publication_id, candidate)
    except BaseException:
        stage.discard_candidate(settings, publication_id)
        raise
    if not report.success:
        stage.discard_candidate(settings, publication_id)
        raise GateFailed(report.failure_message())
    return report


def publish_marts(settings: Settings, publication_id: str, marts: Lake | None = None) -> publish.Publication:
    """Publishes the candidate that passed the gate as one snapshot of the marts catalog (tidewater.gate.publish)."""
    session = marts or publish.open_marts(settings)
    try:
        return publish.publish(settings, publication_id, session)
    finally:
        if marts is None:
            session.con.close()


def gate_and_publish(settings: Settings) -> publish.Publication:
    """What a warehouse run publishes: refuses while quarantine is unreported (UnreportedQuarantine, nothing
    staged), gates a new candidate (GateFailed: nothing published) and publishes it. One DuckDB session has the
    lake (for the quarantine check) and the marts catalog attached."""
    session = publish.open_marts(settings, with_lake=True)
    try:
        check_quarantine_reported(settings, session)
        return publish_marts(settings, run_gate(settings).publication_id, session)
    finally:
        session.con.close()


def check_quarantine_reported(settings: Settings, lake: Lake | None = None) -> None:
    """Refuses to publish while a committed quarantine file of the lake was never reported to people
    (tidewater.drain.quarantine: one query of the lake's catalog, cheap); raises UnreportedQuarantine."""
    from tidewater import drain
    from tidewater.drain import quarantine

    session = lake or drain.open_lake(settings)
    try:
        quarantine.check_reported(session)
    finally:
        if lake is None:
            session.con.close()


def docs_stale(settings: Settings) -> bool:
    """Whether a gate ran since the data docs were last built (or they never were): what the data_docs DAG's
    scheduled runs rebuild them for. False before the first gate run."""
    latest = context.latest_report(settings)
    built = docs.built_at(settings)
    return latest is not None and (built is None or built < latest[1])


def build_docs(settings: Settings, warehouse_copy: str, lake=None) -> int:
    """The GX pages of the gate runs not rendered yet, dbt docs from `warehouse_copy` beside them, both sites
    copied to the lake; returns the files copied. The copy is removed once done (kept for a retry on failure)."""
    from tidewater import drain

    context.update_data_docs(settings)
    docs.generate_dbt_docs(settings, Path(warehouse_copy))
    copied = docs.copy_to_lake(settings, lake or drain.open_lake(settings))
    docs.discard_warehouse_copy(Path(warehouse_copy))
    return copied
