"""Which quarantined records have been reported to people, and which not yet (docs/alerts.md).

A drain writes the records it cannot decode to ``quarantine/<topic>/…jsonl``; a file is *committed* once the
drain's lake commit accepted it (it is in ``tidewater.quarantine_files``). A file no commit accepted (a drain
that failed, e.g. above ``max_bad_share``, or is running) is neither reported nor blocking. After cdc_drain's
report email about committed files went out, their keys are recorded in ``_alerts/quarantine_reported.json``.
The warehouse publishes no marts while a committed file is unreported.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from tidewater.drain.drainer import short_reason
from tidewater.lake import Lake, commit
from tidewater.lake import objects as layout
from tidewater.lake.objects import LakeFile

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


def committed_files(lake: Lake) -> list[LakeFile]:
    """Quarantine files a drain's commit accepted."""
    commit.ensure_tables(lake.con)
    rows = lake.con.execute(f"SELECT key, topic, partition, first_offset, last_offset FROM {commit.QUARANTINE_FILES} "
                            "ORDER BY key").fetchall()
    return [LakeFile(*row) for row in rows]


def reported_keys(lake: Lake) -> set[str]:
    state = lake.bucket.get_json(REPORTED_KEY)
    return set(state.get("files", [])) if isinstance(state, dict) else set()


def unreported_files(lake: Lake) -> list[LakeFile]:
    reported = reported_keys(lake)
    return [f for f in committed_files(lake) if f.key not in reported]


def summarize(lake: Lake, files: list[LakeFile]) -> list[TopicQuarantine]:
    """Reads the files: records and reasons per topic, topics sorted."""
    topics: dict[str, TopicQuarantine] = {}
    for file in sorted(files, key=lambda f: f.key):
        summary = topics.setdefault(file.topic, TopicQuarantine(file.topic))
        body = lake.bucket.client.get_object(Bucket=lake.bucket.bucket, Key=file.key)["Body"].read().decode("utf-8")
        for line in body.splitlines():
            if line.strip():
                summary.records += 1
                summary.reasons[short_reason(str(json.loads(line).get("error", "")))] += 1
        summary.keys.append(file.key)
    return [topics[name] for name in sorted(topics)]


def mark_reported(lake: Lake, keys: list[str]) -> None:
    """Records `keys` as reported (dropping recorded keys that no longer exist). Call after the email went out."""
    existing = {f.key for f in committed_files(lake)}
    lake.bucket.put_json(REPORTED_KEY, {"files": sorted((reported_keys(lake) & existing) | set(keys))})


@dataclass(frozen=True)
class TopicCounts:
    """A topic's committed quarantine: records, files, and the files not reported to people yet."""

    records: int
    files: int
    unreported_files: int


def counts_by_topic(lake: Lake) -> dict[str, TopicCounts]:
    """Per topic with committed quarantine, its counts. Only reads (a catalog no drain committed to has none), so
    the lake may be attached read-only."""
    if not commit.protocol_tables_exist(lake.con):
        return {}
    reported = reported_keys(lake)
    rows = lake.con.execute(f"SELECT topic, sum(records)::BIGINT, list(key) FROM {commit.QUARANTINE_FILES} "
                            "GROUP BY topic ORDER BY topic").fetchall()
    return {topic: TopicCounts(records, len(keys), len(set(keys) - reported)) for topic, records, keys in rows}


def check_reported(lake: Lake) -> None:
    """Raises UnreportedQuarantine when a committed quarantine file was never reported."""
    files = unreported_files(lake)
    if not files:
        return
    by_topic = Counter(f.topic for f in files)
    listed = ", ".join(f"{topic} ({count} files)" for topic, count in sorted(by_topic.items()))
    raise UnreportedQuarantine(
        f"not publishing the marts: quarantined records of {listed} under {lake.bucket.uri(layout.QUARANTINE + '/')} "
        f"were committed but never reported (not in {lake.bucket.uri(REPORTED_KEY)}), so the marts may lack rows "
        "PostgreSQL has and nobody knows. The next cdc_drain run reports them by email (its report_quarantine "
        "task; check the smtp connection if it failed); then run the warehouse again.")
