"""A person-readable summary of what the lake holds (used by `tidewater cdc lake` and the demo).

The first line names the lake; then, each section headed:

  change tables   per table: rows, data files (inlined rows are in the catalog, not in files), ops, newest change
  snapshots       the latest DuckLake snapshots: id, time, what each changed (tables by name)
  positions       per topic and partition: the lake's next offset, Kafka's high watermark, the lag between them
  quarantine      accepted quarantine files per topic, and how many are not reported yet
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tidewater.config import Settings
from tidewater.lake import Lake, commit
from tidewater.lake import objects as layout
from tidewater.lake.catalog import LAKE
from tidewater.sqltext import identifier, literal

SNAPSHOTS = 5  # how many of the latest snapshots the summary shows
CHANGE_LABELS = {  # DuckLake's names of a snapshot's changes, as the summary says them
    "schemas_created": "created schema", "tables_created": "created", "tables_altered": "altered",
    "tables_dropped": "dropped", "tables_inserted_into": "files into", "tables_deleted_from": "deleted from",
    "inlined_insert": "inlined rows into", "inlined_delete": "inlined deletes from",
}


def _change_tables(lake: Lake) -> list[str]:
    rows = lake.con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND "
                            "table_schema = 'main' ORDER BY table_name", [LAKE]).fetchall()
    return [name for (name,) in rows]


def _table_names(lake: Lake) -> dict[str, str]:
    """DuckLake table id (as snapshots' changes name them) → table name."""
    return {str(table_id): name for table_id, name in lake.con.execute(
        f"SELECT table_id, table_name FROM ducklake_table_info({literal(LAKE)})").fetchall()}


def _table_lines(lake: Lake, tables: list[str]) -> list[str]:
    files = dict(lake.con.execute(f"SELECT table_name, file_count FROM ducklake_table_info({literal(LAKE)})"
                                  ).fetchall())
    lines = ["  change tables (lake.main):"]
    for table in tables:
        rows, newest, ops = lake.con.execute(
            f"SELECT count(*), max(_source_ts), string_agg(DISTINCT _op, '' ORDER BY _op) "
            f"FROM {commit.CHANGES}.{identifier(table)}").fetchone()
        lines.append(f"    {table:<12} {rows:>8} changes in {files.get(table, 0):>4} data files, ops {ops or '-'}, "
                     f"newest {newest}")
    return lines


def _describe(changes: dict[str, list[str]] | None, names: dict[str, str]) -> str:
    if not changes:
        return "-"
    return "; ".join(f"{CHANGE_LABELS.get(kind, kind)} {', '.join(names.get(value, value) for value in values)}"
                     for kind, values in sorted(changes.items()))


def _snapshot_lines(lake: Lake, count: int) -> list[str]:
    names = _table_names(lake)
    total, = lake.con.execute(f"SELECT count(*) FROM {LAKE}.snapshots()").fetchone()
    rows = lake.con.execute(f"SELECT snapshot_id, snapshot_time, changes, commit_message FROM {LAKE}.snapshots() "
                            "ORDER BY snapshot_id DESC LIMIT ?", [count]).fetchall()
    lines = [f"  snapshots (latest {len(rows)} of {total}):"]
    for snapshot_id, at, changes, message in rows:
        note = f"  ({message})" if message else ""
        lines.append(f"    #{snapshot_id:<6} {at:%Y-%m-%d %H:%M:%S%z}  {_describe(changes, names)}{note}")
    return lines


def _position_lines(lake: Lake, consumer: Any) -> list[str]:
    from confluent_kafka import KafkaException, TopicPartition

    commit.ensure_tables(lake.con)
    rows = lake.con.execute(f"SELECT topic, partition, next_offset, committed_at FROM {commit.POSITIONS} "
                            "ORDER BY topic, partition").fetchall()
    lines = ["  positions (next offset to drain; Kafka's high watermark; lag):"]
    if not rows:
        lines.append("    none: no drain has committed yet")
    for topic, partition, next_offset, committed_at in rows:
        try:
            high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            kafka = f"high watermark {high:>8}, lag {high - next_offset}"
        except KafkaException as exc:
            kafka = f"high watermark unknown ({exc})"
        lines.append(f"    {topic}[{partition}] next {next_offset:>8}, {kafka}, "
                     f"committed {committed_at:%Y-%m-%d %H:%M:%S}")
    return lines


def _quarantine_lines(lake: Lake) -> list[str]:
    from tidewater.drain import quarantine

    accepted = Counter(file.topic for file in quarantine.committed_files(lake))
    if not accepted:
        return ["  quarantine: no accepted quarantine files"]
    unreported = Counter(file.topic for file in quarantine.unreported_files(lake))
    lines = ["  quarantine (accepted files):"]
    for topic, count in sorted(accepted.items()):
        note = f", {unreported[topic]} not reported yet (the next cdc_drain run mails them)" if unreported[topic] \
            else ", all reported"
        lines.append(f"    {topic}: {count} files in {lake.bucket.uri(layout.quarantine_prefix(topic))}{note}")
    return lines


def lake_summary(settings: Settings, lake: Lake | None = None, consumer: Any = None,
                 snapshots: int = SNAPSHOTS) -> list[str]:
    """The summary's lines (the deployment's lake and Kafka unless `lake` / `consumer` are given)."""
    from tidewater import drain

    own_lake, own_consumer = lake is None, consumer is None
    lake = lake or drain.open_lake(settings)
    try:
        header = f"[lake] DuckLake catalog {LAKE!r}, data in {lake.bucket.uri(layout.DATA + '/')}"
        tables = _change_tables(lake)
        if not tables:
            return [header, "  no change tables yet: run cdc_drain (airflow dags test cdc_drain, or make drain)"]
        consumer = consumer or drain.kafka_consumer(settings)
        try:
            return [header, *_table_lines(lake, tables), *_snapshot_lines(lake, snapshots),
                    *_position_lines(lake, consumer), *_quarantine_lines(lake)]
        finally:
            if own_consumer:
                consumer.close()
    finally:
        if own_lake:
            lake.con.close()
