"""Alert breaches: which observations breach their limit, and which emails that calls for.

Pure: an observation is either a number and its limit (`Measurement`: an age, a lag, WAL retained by a
replication slot) or a state that is healthy or not (`ConnectorHealth`: the Debezium connector and each of
its tasks). The breach state is a small JSON-able dict kept between checks (by ``sources.StateObject`` in the
lake), so a breach is mailed once when it starts and once when it recovers, however often it is checked in
between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from tidewater.alerts.messages import Email, connector_email, freshness_email

State = dict[str, dict[str, Any]]  # observation key → {"since": ISO time, "subject": ...} while breached


class Observation(Protocol):
    """What the breach state machine needs of anything it watches."""

    @property
    def key(self) -> str: ...  # stable id, e.g. "marts", "slot:tidewater_shop", "task:shop-postgres/0"

    @property
    def subject(self) -> str: ...  # what is observed, for people

    @property
    def breached(self) -> bool | None: ...  # None: cannot be observed now; the state is kept as it was

    def measured(self) -> str: ...

    def email(self, *, recovered: bool, since: str) -> Email: ...


@dataclass(frozen=True)
class Measurement:
    """A number and its limit; over the limit (not equal to it) is a breach, and so is any `fault`."""

    key: str  # e.g. "marts", "change:orders", "lag:shop.shop.orders", "slot:tidewater_shop"
    subject: str  # what is measured, for people: "published marts"
    value: float | None  # None: nothing to measure now (e.g. nothing published yet); the state is kept
    limit: float
    unit: str  # "minutes old", "records behind", "bytes of WAL retained": its first word names the limit's unit
    detail: str = ""
    fault: str = ""  # a breach whatever the value, in a few words (e.g. "WAL lost" for an invalidated slot)

    @property
    def breached(self) -> bool | None:
        if self.fault:
            return True
        return None if self.value is None else self.value > self.limit

    def measured(self) -> str:
        if self.fault:
            return self.fault
        return "unknown" if self.value is None else f"{self.value:,.0f} {self.unit}"

    def limit_text(self) -> str:
        return f"{self.limit:,.0f} {self.unit.split()[0]}"

    def email(self, *, recovered: bool, since: str) -> Email:
        return freshness_email(recovered=recovered, subject=self.subject, measured=self.measured(),
                               limit=self.limit_text(), detail=self.detail, since=since)


@dataclass(frozen=True)
class ConnectorHealth:
    """The state of the Debezium connector (`task` None) or of one of its tasks, as Kafka Connect reports it.

    A connector is healthy only when RUNNING (PAUSED, STOPPED, FAILED, UNASSIGNED, or the pseudo-states
    UNREACHABLE and NOT REGISTERED are breaches); a task is unhealthy when FAILED.
    """

    connector: str
    task: int | None
    state: str | None  # None: unknown now (e.g. Connect unreachable, for a task); the state is kept
    connect_url: str
    trace: str = ""  # Connect's stack trace, or why the state could not be read
    max_lines: int | None = 20  # of the trace, in the email

    @property
    def key(self) -> str:
        return f"connector:{self.connector}" if self.task is None else f"task:{self.connector}/{self.task}"

    @property
    def subject(self) -> str:
        task = "" if self.task is None else f" task {self.task}"
        return f"Debezium connector {self.connector}{task}"

    @property
    def breached(self) -> bool | None:
        if self.state is None:
            return None
        return self.state != "RUNNING" if self.task is None else self.state == "FAILED"

    def measured(self) -> str:
        return self.state or "unknown"

    def email(self, *, recovered: bool, since: str) -> Email:
        return connector_email(recovered=recovered, connector=self.connector, task=self.task,
                               state=self.measured(), trace=self.trace, connect_url=self.connect_url,
                               max_lines=self.max_lines, since=since)


def age_minutes(newest: datetime, now: datetime) -> float:
    if newest.tzinfo is None or now.tzinfo is None:
        raise ValueError(f"age_minutes needs aware times, got {newest!r} and {now!r}")
    return max((now - newest).total_seconds() / 60, 0.0)


@dataclass(frozen=True)
class Transition:
    kind: Literal["breach", "recovered"]
    measurement: Observation
    since: str  # when the breach started (ISO)

    def email(self) -> Email:
        return self.measurement.email(recovered=self.kind == "recovered", since=self.since)


def decide(state: Mapping[str, Mapping[str, Any]], measurements: Iterable[Observation],
           now: datetime) -> tuple[State, list[Transition]]:
    """The state after these observations and the transitions (each one email) that lead there."""
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


def check(measurements: list[Observation], *, load_state: Callable[[], State],
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
