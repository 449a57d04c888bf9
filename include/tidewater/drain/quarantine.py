"""Which quarantined records have been reported to people, and which not yet (docs/alerts.md).

A drain writes the records it cannot decode to ``quarantine/<topic>/…jsonl``. After cdc_drain's report email
about them went out, their keys are recorded in ``_alerts/quarantine_reported.json``. A quarantine file is
*committed* once its drain committed the offsets it covers: a file an in-flight journal still covers (a drain
that failed, e.g. above ``max_bad_share``, or is running) is a leftover its next run removes, so it is neither
reported nor blocking. The warehouse publishes no marts while a committed file is unreported.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from tidewater.drain import lake as layout
from tidewater.drain.drainer import short_reason
from tidewater.drain.lake import Lake, LakeFile

REPORTED_KEY = "_alerts/quarantine_reported.json"


class UnreportedQuarantine(RuntimeError):
    """Committed quarantine files nobody has been told about; the message lists them and what to do."""


@dataclass
class TopicQuarantine:
    """The unreported quarantine of one topic, as a report shows it."""

    topic: str
    records: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)


def _inflight_starts(lake: Lake) -> dict[tuple[str, int], int]:
    """(topic, partition) → first uncommitted offset, for every drain journal in the lake."""
    starts = {}
    for key in lake.keys(layout.INFLIGHT + "/"):
        topic, _, name = key[len(layout.INFLIGHT) + 1:].rpartition("/")
        journal = lake.get_json(key)
        if journal is not None and name.startswith("p") and name.endswith(".json"):
            starts[(topic, int(name[1:-5]))] = int(journal["start"])
    return starts


def committed_files(lake: Lake) -> list[LakeFile]:
    """Quarantine files whose offsets are committed (one listing of quarantine/ and of the journals)."""
    files = [f for f in map(layout.parse_key, lake.keys(layout.QUARANTINE + "/")) if f is not None]
    starts = _inflight_starts(lake) if files else {}
    return [f for f in files if f.first_offset < starts.get((f.topic, f.partition), f.first_offset + 1)]


def reported_keys(lake: Lake) -> set[str]:
    state = lake.get_json(REPORTED_KEY)
    return set(state.get("files", [])) if isinstance(state, dict) else set()


def unreported_files(lake: Lake) -> list[LakeFile]:
    reported = reported_keys(lake)
    return [f for f in committed_files(lake) if f.key not in reported]


def summarize(lake: Lake, files: list[LakeFile]) -> list[TopicQuarantine]:
    """Reads the files: records and reasons per topic, topics sorted."""
    topics: dict[str, TopicQuarantine] = {}
    for file in sorted(files, key=lambda f: f.key):
        summary = topics.setdefault(file.topic, TopicQuarantine(file.topic))
        body = lake.client.get_object(Bucket=lake.bucket, Key=file.key)["Body"].read().decode("utf-8")
        for line in body.splitlines():
            if line.strip():
                summary.records += 1
                summary.reasons[short_reason(str(json.loads(line).get("error", "")))] += 1
        summary.keys.append(file.key)
    return [topics[name] for name in sorted(topics)]


def mark_reported(lake: Lake, keys: list[str]) -> None:
    """Records `keys` as reported (dropping recorded keys that no longer exist). Call after the email went out."""
    existing = {f.key for f in committed_files(lake)}
    lake.put_json(REPORTED_KEY, {"files": sorted((reported_keys(lake) & existing) | set(keys))})


def check_reported(lake: Lake) -> None:
    """Raises UnreportedQuarantine when a committed quarantine file was never reported."""
    files = unreported_files(lake)
    if not files:
        return
    by_topic = Counter(f.topic for f in files)
    listed = ", ".join(f"{topic} ({count} files)" for topic, count in sorted(by_topic.items()))
    raise UnreportedQuarantine(
        f"not publishing the marts: quarantined records of {listed} under {lake.uri(layout.QUARANTINE + '/')} "
        f"were committed but never reported (not in {lake.uri(REPORTED_KEY)}), so the marts may lack rows "
        "PostgreSQL has and nobody knows. The next cdc_drain run reports them by email (its report_quarantine "
        "task; check the smtp connection if it failed); then run the warehouse again.")
