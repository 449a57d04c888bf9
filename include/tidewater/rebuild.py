"""Which interval a warehouse run rebuilds: the dbt vars `interval_start` / `interval_end` (end exclusive).

- A user's params (`interval_start`, `interval_end`, ISO dates) win: a manual date-bounded rebuild.
- A backfill or the daily scheduled run rebuilds its data interval (one day), so
  `airflow backfill create --dag-id warehouse --from-date A --to-date B` replaces exactly those days' facts.
- A run triggered by new lake data (or a manual run without an interval) folds the new changes in
  incrementally and rebuilds facts from the current state: no interval.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime

INTERVAL_RUN_TYPES = frozenset({"backfill", "scheduled"})


class IntervalError(ValueError):
    """The rebuild interval a user asked for cannot be used."""


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _as_date(name: str, value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise IntervalError(f"param {name}={value!r} is not a date: give it as YYYY-MM-DD, e.g. 2026-01-05")


def rebuild_interval(params: Mapping[str, object], run_type: str,
                     data_interval_start: datetime | None, data_interval_end: datetime | None) -> tuple[str, str]:
    """The interval as ISO strings, or ("", "") for none (dbt reads an empty var as unset)."""
    start, end = params.get("interval_start"), params.get("interval_end")
    if not isinstance(params.get("full_refresh", False), bool):
        raise IntervalError(f"param full_refresh={params['full_refresh']!r}: give true or false")
    if start or end:
        if not (start and end):
            raise IntervalError(f"params interval_start={start!r} and interval_end={end!r}: give both dates "
                                "(end exclusive) or neither")
        first, last = _as_date("interval_start", start), _as_date("interval_end", end)
        if first >= last:
            raise IntervalError(f"interval_start {first} is not before interval_end {last} (the end is exclusive)")
        return first.isoformat(), last.isoformat()
    if getattr(run_type, "value", run_type) in INTERVAL_RUN_TYPES and data_interval_start and data_interval_end:
        return data_interval_start.isoformat(), data_interval_end.isoformat()
    return "", ""
