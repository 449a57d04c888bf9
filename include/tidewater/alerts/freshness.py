"""Data-freshness SLA: which measurements breach their limit, and which emails that calls for.

Pure: a measurement is a number and its limit; the breach state is a small JSON-able dict kept between
checks (by ``sources.StateObject`` in the lake), so a breach is mailed once when it starts and once when it
recovers, however often it is checked in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from tidewater.alerts.messages import Email, freshness_email

State = dict[str, dict[str, Any]]  # measurement key → {"since": ISO time, "subject": ...} while breached


@dataclass(frozen=True)
class Measurement:
    key: str  # stable id, e.g. "marts", "change:orders", "lag:shop.shop.orders"
    subject: str  # what is measured, for people: "published marts"
    value: float | None  # None: nothing to measure now (e.g. nothing published yet); the state is kept
    limit: float
    unit: Literal["minutes old", "records behind"]
    detail: str = ""

    @property
    def breached(self) -> bool | None:
        return None if self.value is None else self.value > self.limit

    def measured(self) -> str:
        return "unknown" if self.value is None else f"{self.value:,.0f} {self.unit}"

    def limit_text(self) -> str:
        return f"{self.limit:,.0f} {self.unit.split()[0]}"


def age_minutes(newest: datetime, now: datetime) -> float:
    if newest.tzinfo is None or now.tzinfo is None:
        raise ValueError(f"age_minutes needs aware times, got {newest!r} and {now!r}")
    return max((now - newest).total_seconds() / 60, 0.0)


@dataclass(frozen=True)
class Transition:
    kind: Literal["breach", "recovered"]
    measurement: Measurement
    since: str  # when the breach started (ISO)

    def email(self) -> Email:
        m = self.measurement
        return freshness_email(recovered=self.kind == "recovered", subject=m.subject, measured=m.measured(),
                               limit=m.limit_text(), detail=m.detail, since=self.since)


def decide(state: Mapping[str, Mapping[str, Any]], measurements: Iterable[Measurement],
           now: datetime) -> tuple[State, list[Transition]]:
    """The state after these measurements and the transitions (each one email) that lead there."""
    new_state: State = {key: dict(value) for key, value in state.items()}
    transitions: list[Transition] = []
    for measurement in measurements:
        breached, known = measurement.breached, measurement.key in new_state
        if breached and not known:
            since = now.isoformat()
            new_state[measurement.key] = {"since": since, "subject": measurement.subject}
            transitions.append(Transition("breach", measurement, since))
        elif breached is False and known:
            transitions.append(Transition("recovered", measurement, new_state.pop(measurement.key)["since"]))
    return new_state, transitions


def check(measurements: list[Measurement], *, load_state: Callable[[], State],
          save_state: Callable[[State], None], send: Callable[[Email], None], now: datetime) -> list[Transition]:
    """Sends one email per transition, saving the state after each, so a failure part-way neither loses a
    breach nor mails a transition twice (at worst the one whose email went out just before a failed save)."""
    state = load_state()
    _, transitions = decide(state, measurements, now)
    for transition in transitions:
        send(transition.email())
        state, _ = decide(state, [transition.measurement], now)
        save_state(state)
    return transitions
