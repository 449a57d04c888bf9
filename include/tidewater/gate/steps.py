"""The gate's steps as the warehouse DAG runs them: gate (stage + validate), publish, docs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


def docs_due(settings: Settings, *, run_type: str, gate_passed: bool, now: datetime | None = None) -> bool:
    """Whether a warehouse run rebuilds the data docs: always after a failed gate (its pages are what the alert
    links to) and after a run a person, the daily schedule or a backfill started; after a drain-triggered run
    only once they are `docs_refresh_minutes` old, so steady traffic does not spend the warehouse on them."""
    if not gate_passed or run_type != "asset_triggered":
        return True
    built = docs.built_at(settings)
    return built is None or (now or datetime.now(UTC)) - built >= timedelta(minutes=settings.docs_refresh_minutes)


def build_docs(settings: Settings, lake=None) -> int:
    """The GX pages of the latest gate run, dbt docs beside them, both sites copied to the lake."""
    from tidewater import drain

    context.update_data_docs(settings)
    docs.generate_dbt_docs(settings)
    return docs.copy_to_lake(settings, lake or drain.open_lake(settings))
