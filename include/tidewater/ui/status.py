"""The pipeline status page's figures (plugins/tidewater_status.py, docs/operating.md): one JSON-able dict.

The figures come from where the alerts read them (tidewater.alerts.sources), the drain's quarantine record, the
marts catalog and the gate's recorded validations. Each part is measured once and on its own: a part that fails is
``{"error": "<what could not be read and why>"}``, every other part is still ``{"value": ...}``.

  lag          per drained topic: Kafka's high watermark minus the lake's position (sources.lag_measurements)
  changes      per change table: the newest landed change (sources.newest_change: future-dated changes ignored) and
               the rows landed today (`_ingested_at` since 00:00 UTC)
  quarantine   per topic: committed quarantine records and files, files not reported yet (quarantine.counts_by_topic)
  connector    the Debezium connector and each of its tasks (sources.connector_health)
  slots        the WAL each replication slot of the shop's server retains (sources.slot_measurements)
  publication  the publication readers get now and its age (gate.publish.current, read as the marts reader)
  gate         the newest gate run: passed or not, expectations evaluated and failed (gate.context.latest_report)
  freshness    per change table over the last FRESHNESS_WINDOW: the age of its newest landed change, from the lake's
               own rows (each change records when it landed, `_ingested_at`, and when it happened, `_source_ts`)

``tables`` joins lag, changes and quarantine per table (a figure whose part failed is None).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tidewater.config import Settings

log = logging.getLogger(__name__)

FRESHNESS_WINDOW = timedelta(hours=24)
PAGE = Path(__file__).with_name("status_page.html")  # the page; "__API__" in it is the JSON endpoint's path
Part = dict[str, Any]  # {"value": ...} or {"error": "..."}
Landing = tuple[datetime, datetime | None]  # when changes landed, the newest source time among them


def measured(what: str, measure: Callable[[], Any]) -> Part:
    """`measure()` as a part; its failure as the part's error (logged), never an exception."""
    try:
        return {"value": measure()}
    except Exception as exc:  # one part failing must not hide the others
        log.exception("status page: could not read %s", what)
        return {"error": f"could not read {what}: {type(exc).__name__}: {exc}"}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def observation(item: Any) -> dict[str, Any]:
    """A freshness Measurement or ConnectorHealth as JSON: what it is, its value and limit, whether it breaches."""
    return {"key": item.key, "subject": item.subject, "measured": item.measured(), "breached": item.breached,
            "value": getattr(item, "value", None), "limit": getattr(item, "limit", None),
            "detail": getattr(item, "detail", "") or getattr(item, "trace", "")}


def landings(con: Any, table: str, since: datetime) -> list[Landing]:
    """The table's changes that landed after `since`, by minute of landing: the last landing time of the minute and
    the newest source time among its changes (changes dated more than FUTURE_TOLERANCE after they landed ignored,
    as the monitor ignores them)."""
    from tidewater.alerts.sources import FUTURE_TOLERANCE, LAKE
    from tidewater.sqltext import identifier

    return con.execute(
        "SELECT max(_ingested_at), max(_source_ts) FILTER (WHERE _source_ts <= _ingested_at + $tolerance) "
        f"FROM {LAKE}.main.{identifier(table)} WHERE _ingested_at > $since "
        "GROUP BY date_trunc('minute', _ingested_at) ORDER BY 1",
        {"since": since, "tolerance": FUTURE_TOLERANCE}).fetchall()


def age_series(landed: Iterable[Landing], now: datetime) -> list[tuple[datetime, float]]:
    """The age in minutes of the newest landed change over time, from the landings (oldest first): it grows until a
    landing brings a newer change, so each landing gives the age just before it and just after it, and the series
    ends now. Starts at the first landing that brought a change time."""
    from tidewater.alerts.freshness import age_minutes

    points: list[tuple[datetime, float]] = []
    newest: datetime | None = None
    for landed_at, source_newest in landed:
        if newest is not None:
            points.append((landed_at, age_minutes(newest, landed_at)))
        if source_newest is not None and (newest is None or source_newest > newest):
            newest = source_newest
            points.append((landed_at, age_minutes(newest, landed_at)))
    if newest is not None:
        points.append((now, age_minutes(newest, now)))
    return points


def table_rows(lag: Part, changes: Part, quarantine: Part) -> list[dict[str, Any]]:
    """One row per table that has a drained topic or a change table; figures of a failed part are None."""
    from tidewater.lake.objects import table_of

    rows: dict[str, dict[str, Any]] = {}

    def row(table: str) -> dict[str, Any]:
        return rows.setdefault(table, {"table": table, "topic": None, "lag": None, "lag_breached": None,
                                       "newest_change": None, "newest_change_age_minutes": None,
                                       "change_breached": None, "rows_today": None, "quarantined": None,
                                       "quarantine_unreported_files": None})

    for topic, measurement in (lag.get("value") or {}).items():
        row(table_of(topic)).update(topic=topic, lag=measurement["value"], lag_breached=measurement["breached"])
    for table, change in (changes.get("value") or {}).items():
        row(table).update(newest_change=change["newest"], newest_change_age_minutes=change["age_minutes"],
                          change_breached=change["breached"], rows_today=change["rows_today"])
    if "value" in quarantine:
        for table_row in rows.values():
            table_row.update(quarantined=0, quarantine_unreported_files=0)
        for topic, counts in quarantine["value"].items():
            table_row = row(table_of(topic))
            table_row.update(topic=table_row["topic"] or topic, quarantined=counts["records"],
                             quarantine_unreported_files=counts["unreported_files"])
    return [rows[table] for table in sorted(rows)]


def _changes(con: Any, settings: Settings, now: datetime) -> dict[str, dict[str, Any]]:
    from tidewater.alerts import sources
    from tidewater.alerts.freshness import age_minutes
    from tidewater.sqltext import identifier

    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    limit = settings.freshness_max_change_age_minutes
    changes = {}
    for table in sources.change_tables(con):
        newest, future_count, _ = sources.newest_change(con, table, now, limit)
        rows_today = con.execute(f"SELECT count(*) FROM {sources.LAKE}.main.{identifier(table)} "
                                 "WHERE _ingested_at >= ?", [today]).fetchone()[0]
        age = age_minutes(newest, now) if newest else None
        changes[table] = {"newest": _iso(newest), "age_minutes": age, "limit_minutes": limit,
                          "breached": None if age is None else age > limit, "future_dated": future_count,
                          "rows_today": rows_today}
    return changes


def _freshness(con: Any, settings: Settings, now: datetime) -> dict[str, Any]:
    from tidewater.alerts import sources

    since = now - FRESHNESS_WINDOW
    series = {table: [[_iso(at), age] for at, age in age_series(landings(con, table, since), now)]
              for table in sources.change_tables(con)}
    return {"since": _iso(since), "until": _iso(now), "limit_minutes": settings.freshness_max_change_age_minutes,
            "series": {table: points for table, points in series.items() if points}}


def _publication(settings: Settings, now: datetime) -> dict[str, Any] | None:
    from tidewater.alerts.freshness import age_minutes
    from tidewater.gate import publish
    from tidewater.marts_reader import NothingPublished

    try:
        con = publish.open_published(settings)
    except NothingPublished:
        return None
    with con:
        current = publish.current(con)
    if current is None:
        return None
    age = age_minutes(current.published_at, now)
    limit = settings.freshness_max_mart_age_minutes
    return {**current.summary(), "age_minutes": age, "limit_minutes": limit, "breached": age > limit}


def _gate(settings: Settings, now: datetime) -> dict[str, Any] | None:
    from tidewater.alerts.freshness import age_minutes
    from tidewater.gate import context

    latest = context.latest_report(settings)
    if latest is None:
        return None
    report, ran_at = latest
    return {"publication_id": report.publication_id, "ran_at": _iso(ran_at), "age_minutes": age_minutes(ran_at, now),
            "passed": report.success, "evaluated": report.evaluated, "failed": len(report.failures),
            "failures": [failure.describe() for failure in report.failures]}


def pipeline_status(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Every part of the status page (module docstring). The lake catalog is attached read-only once, when a part
    first needs it; the Kafka consumer only reads metadata and watermarks (it never joins a group)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from tidewater import drain
    from tidewater.alerts import sources
    from tidewater.drain import quarantine
    from tidewater.lake import Lake
    from tidewater.lake.objects import Bucket

    now = now or datetime.now(UTC)
    opened: list[Any] = []

    @functools.cache
    def lake() -> Any:
        opened.append(con := sources.open_lake_catalog(settings))
        return con

    def lags() -> dict[str, dict[str, Any]]:
        consumer = drain.kafka_consumer(settings)
        try:
            return {m.key.removeprefix("lag:"): observation(m)
                    for m in sources.lag_measurements(consumer, lake(), settings)}
        finally:
            consumer.close()

    def quarantined() -> dict[str, dict[str, int]]:
        bucket = Bucket(S3Hook(aws_conn_id=settings.lake_conn_id).get_conn(), settings.lake_bucket)
        return {topic: asdict(counts) for topic, counts in quarantine.counts_by_topic(Lake(lake(), bucket)).items()}

    try:
        parts = {
            "lag": measured("the topic lags", lags),
            "changes": measured("the landed changes", lambda: _changes(lake(), settings, now)),
            "quarantine": measured("the quarantine", quarantined),
            "connector": measured("the Debezium connector",
                                  lambda: [observation(h) for h in sources.connector_health(settings)]),
            "slots": measured("the replication slots",
                              lambda: [observation(m) for m in sources.slot_measurements(settings)]),
            "publication": measured("the published marts", lambda: _publication(settings, now)),
            "gate": measured("the gate's results", lambda: _gate(settings, now)),
            "freshness": measured("the freshness history", lambda: _freshness(lake(), settings, now)),
        }
    finally:
        for con in opened:
            con.close()
    return {"generated_at": _iso(now), "lake_bucket": settings.lake_bucket, "parts": parts,
            "tables": table_rows(parts["lag"], parts["changes"], parts["quarantine"])}


def page_html(api_path: str) -> str:
    """The status page, fetching its figures from `api_path`."""
    return PAGE.read_text().replace("__API__", api_path)
