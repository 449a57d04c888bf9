"""What the gate expects of the marts: one suite per batch, as plain data (no Great Expectations import).

A batch is a table of the candidate publication (the marts, copied from the warehouse) or a small frame
the gate derives from it with SQL, because pandas expectations see one table at a time: a reconciliation
on one row of totals (facts against the warehouse's current state of the source), the freshness on the
newest change's age. Keys and foreign keys are dbt's tests, never checked here again.

Which marts there are and what their suites expect is the project's own (the demo's: the shop's,
``tidewater_shop.marts``), named by ``TIDEWATER_GATE_MARTS``; the freshness batch is the product's.
`tidewater.gate.context` turns these into GX suites, validation definitions and checkpoints at run time
(git-ignored files under great_expectations/, rebuilt when this changes).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from tidewater.config import ConfigError, Settings
from tidewater.tables import registry

FIRST_DATE_KEY = 20000101
# Filled in at each run (checkpoint expectation parameters): they depend on the day and on the settings.
MAX_DATE_KEY = {"$PARAMETER": "max_date_key"}
MAX_CHANGE_AGE_HOURS = {"$PARAMETER": "max_change_age_hours"}

@dataclass(frozen=True)
class Expectation:
    type: str  # GX's snake_case name, e.g. expect_column_values_to_be_unique
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """One validated frame: its name (the suite, validation definition and checkpoint share it) and SQL."""

    name: str
    sql: str
    expectations: tuple[Expectation, ...] = field(default_factory=tuple)


def not_null(*columns: str) -> list[Expectation]:
    return [Expectation("expect_column_values_to_not_be_null", {"column": column}) for column in columns]


def at_least_zero(*columns: str) -> list[Expectation]:
    return [Expectation("expect_column_values_to_be_between", {"column": column, "min_value": 0})
            for column in columns]


def positive(column: str) -> Expectation:
    return Expectation("expect_column_values_to_be_between", {"column": column, "min_value": 0, "strict_min": True})


def date_key_in_range(column: str) -> Expectation:
    """A date key (YYYYMMDD) from 2000-01-01 to tomorrow (a run-time parameter)."""
    return Expectation("expect_column_values_to_be_between",
                       {"column": column, "min_value": FIRST_DATE_KEY, "max_value": MAX_DATE_KEY})


def valid_from_before_valid_to() -> Expectation:
    return Expectation("expect_column_pair_values_a_to_be_greater_than_b",
                       {"column_A": "valid_to", "column_B": "valid_from", "or_equal": True})


# The warehouse figures the gate compares the marts with, copied into the candidate's `gate` schema: the marts
# module's own (SOURCE_FIGURES, one row), and the newest change of every registered table.
SOURCE_STATE_SQL = """
select
    {figure_columns}
    (select max(newest) from (
        {newest_changes}
    )) as newest_change_at,
    now() as staged_at
{from_figures}
"""
FUTURE_TOLERANCE_MINUTES = 5  # clock skew between the source and the warehouse that still counts as now

# The source's freshness: the newest change's age, whatever the marts are.
FRESHNESS = Batch(
    "freshness",
    "select newest_change_at, epoch(staged_at - newest_change_at) / 3600.0 as newest_change_age_hours "
    "from gate.source_state",
    (*not_null("newest_change_at"),
     Expectation("expect_column_values_to_be_between",
                 {"column": "newest_change_age_hours", "min_value": -1, "max_value": MAX_CHANGE_AGE_HOURS})))


def marts_module(settings: Settings | None = None) -> ModuleType:
    """The module that names the marts to publish and their suites (`TIDEWATER_GATE_MARTS`): its ``MARTS``
    (the dbt models published, in the warehouse's main schema), ``BATCHES`` (their suites, and any derived
    frames) and ``SOURCE_FIGURES`` (SQL giving one row of warehouse figures the batches compare with, or "")."""
    name = (settings or Settings.from_env()).gate_marts
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise ConfigError(f"TIDEWATER_GATE_MARTS={name!r}: no such module ({error}); name the module that "
                          "declares your marts' MARTS, BATCHES and SOURCE_FIGURES (docs/gate.md)") from None
    missing = [attribute for attribute in ("MARTS", "BATCHES", "SOURCE_FIGURES") if not hasattr(module, attribute)]
    if missing:
        raise ConfigError(f"TIDEWATER_GATE_MARTS={name!r}: the module has no {', '.join(missing)} (docs/gate.md)")
    return module


def mart_names(settings: Settings | None = None) -> tuple[str, ...]:
    return tuple(marts_module(settings).MARTS)


def batches(settings: Settings | None = None) -> tuple[Batch, ...]:
    """Every batch the gate validates: the marts module's, then the source's freshness."""
    return (*marts_module(settings).BATCHES, FRESHNESS)


def source_state_sql(settings: Settings | None = None) -> str:
    # A change dated in the future (a source clock ahead, a bad row) is no sign of freshness: counting it would
    # hide staleness and fail every publication until the clock caught up.
    newest = "\n        union all ".join(
        f"select max(valid_from) filter (where valid_from <= now() + interval '{FUTURE_TOLERANCE_MINUTES} minutes') "
        f"as newest from {table.versions_model}" for table in registry())
    figures = marts_module(settings).SOURCE_FIGURES.strip()
    return SOURCE_STATE_SQL.format(newest_changes=newest, figure_columns="figures.*," if figures else "",
                                   from_figures=f"from ({figures}) as figures" if figures else "")


def batch(name: str, settings: Settings | None = None) -> Batch:
    for candidate in batches(settings):
        if candidate.name == name:
            return candidate
    raise KeyError(f"no gate batch named {name!r}; known: {', '.join(b.name for b in batches(settings))}")
