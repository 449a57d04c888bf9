"""What freshness_monitor observes, from the real systems: the published marts' pointer and the newest
landed change of each table (both in the lake), each drained topic's lag (Kafka), the Debezium connector's and
its tasks' states (Kafka Connect's REST API) and the WAL each replication slot retains (PostgreSQL)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from tidewater.alerts.freshness import ConnectorHealth, Measurement, Observation, State, age_minutes
from tidewater.config import Settings

log = logging.getLogger(__name__)

STATE_KEY = "_alerts/freshness_state.json"
MARTS_POINTER_KEY = "marts/_current.json"  # tidewater.gate.publish.POINTER_KEY (not imported: it pulls duckdb)
_DT = re.compile(r"dt=(\d{4}-\d{2}-\d{2})/$")
# A change time up to this far ahead of the monitor's clock counts as now (clock skew between the source
# database and the worker); later ones are future-dated and do not make a table look fresh.
FUTURE_TOLERANCE = timedelta(minutes=5)


class StateObject:
    """The breach state as one JSON object in the lake: durable, and readable by anyone debugging."""

    def __init__(self, lake: Any, key: str = STATE_KEY) -> None:
        self.lake, self.key = lake, key

    def load(self) -> State:
        return self.lake.get_json(self.key) or {}

    def save(self, state: State) -> None:
        self.lake.put_json(self.key, state)


def _folders(lake: Any, prefix: str) -> list[str]:
    folders: list[str] = []
    for page in lake.client.get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=prefix,
                                                                       Delimiter="/"):
        folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
    return folders


def marts_measurement(lake: Any, settings: Settings, now: datetime) -> Measurement:
    pointer = lake.get_json(MARTS_POINTER_KEY)
    published = datetime.fromisoformat(pointer["published_at"]) if pointer else None
    return Measurement(
        key="marts", subject="published marts",
        value=age_minutes(published, now) if published else None,
        limit=settings.freshness_max_mart_age_minutes, unit="minutes old",
        detail=(f"publication {pointer['publication_id']} ({lake.uri(MARTS_POINTER_KEY)}), published at "
                f"{pointer['published_at']}") if pointer else "",
    )


def split_future(folders: list[str], cutoff: datetime) -> tuple[list[str], list[str]]:
    """Date folders (``…/dt=YYYY-MM-DD/``) up to the cutoff's date, oldest first, and those after it."""
    dated = sorted((date.fromisoformat(match[1]), folder) for folder in folders if (match := _DT.search(folder)))
    return ([folder for day, folder in dated if day <= cutoff.date()],
            [folder for day, folder in dated if day > cutoff.date()])


def change_measurement(table: str, *, newest: datetime | None, where: str, future_count: int,
                       future_newest: datetime | None, cutoff: datetime, limit: float, now: datetime) -> Measurement:
    """The age of a table's newest change not after `cutoff`; future-dated changes are only reported."""
    detail = f"newest _source_ts {newest.isoformat() if newest else 'none'} in {where}"
    if future_count:
        detail += (f"; ignored {future_count:,} change(s) dated after {cutoff.isoformat()} (now + "
                   f"{FUTURE_TOLERANCE.total_seconds() / 60:g} min), the newest at "
                   f"{future_newest.isoformat() if future_newest else '?'}: a source clock ahead, or a wrong "
                   "commit time; they do not count as fresh")
    return Measurement(key=f"change:{table}", subject=f"newest landed change of table {table}",
                       value=age_minutes(newest, now) if newest else None, limit=limit, unit="minutes old",
                       detail=detail)


def _read_changes(con: Any, lake: Any, folders: list[str], cutoff: datetime) -> tuple[datetime | None, int,
                                                                                   datetime | None]:
    """In these folders: the newest `_source_ts` not after cutoff, and the count and newest of those after it."""
    return con.execute(
        "select max(_source_ts) filter (where _source_ts <= $cutoff), count(*) filter (where _source_ts > $cutoff), "
        "max(_source_ts) filter (where _source_ts > $cutoff) from read_parquet($files, union_by_name = true)",
        {"cutoff": cutoff, "files": [lake.uri(folder + "*.parquet") for folder in folders]}).fetchone()


def change_measurements(lake: Any, settings: Settings, now: datetime) -> list[Measurement]:
    """Per table in raw/: the newest `_source_ts` not after now (+ FUTURE_TOLERANCE), from its newest date folder
    up to today that has one (folders are change dates); changes dated later are counted in the detail."""
    from tidewater import duck
    from tidewater.config import get_connection

    cutoff = now + FUTURE_TOLERANCE
    tables = {folder.rstrip("/").rsplit("/", 1)[-1]: folder for folder in _folders(lake, "raw/")}
    measurements = []
    con = None
    try:
        for table, folder in sorted(tables.items()):
            past, future = split_future(_folders(lake, folder), cutoff)
            if not past and not future:
                continue
            if con is None:
                con = duck.connect_lake(get_connection(settings.lake_conn_id))
            newest, future_count, future_newest, where = None, 0, None, lake.uri(past[-1] if past else future[0])
            if future:
                _, future_count, future_newest = _read_changes(con, lake, future, cutoff)
            for dated in reversed(past):  # the newest folder, unless all its changes are future-dated
                newest, ahead, ahead_newest = _read_changes(con, lake, [dated], cutoff)
                future_count += ahead
                future_newest = max(filter(None, [future_newest, ahead_newest]), default=None)
                if newest is not None:
                    where = lake.uri(dated)
                    break
            measurements.append(change_measurement(
                table, newest=newest, where=where, future_count=future_count, future_newest=future_newest,
                cutoff=cutoff, limit=settings.freshness_max_change_age_minutes, now=now))
    finally:
        if con is not None:
            con.close()
    return measurements


def lag_measurements(consumer: Any, settings: Settings) -> list[Measurement]:
    """Per drained topic: Kafka's high watermark minus the drain group's committed offset, over partitions
    (a partition the group never committed counts from the oldest retained record)."""
    from confluent_kafka import TopicPartition

    from tidewater import drain

    measurements = []
    for topic in drain.discover_topics(consumer, settings):
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        partitions = [TopicPartition(topic, partition) for partition in metadata.partitions]
        lag = 0
        for committed in consumer.committed(partitions, timeout=30):
            low, high = consumer.get_watermark_offsets(committed, timeout=30)
            lag += high - (committed.offset if committed.offset >= 0 else low)
        measurements.append(Measurement(
            key=f"lag:{topic}", subject=f"lag of topic {topic}", value=lag,
            limit=settings.freshness_max_topic_lag, unit="records behind",
            detail=f"high watermark minus the committed offset of consumer group "
                   f"{consumer_group(settings)!r}, summed over {len(partitions)} partition(s)",
        ))
    return measurements


def consumer_group(settings: Settings) -> str:
    from tidewater.cdc.topics import consumer_config

    return str(consumer_config(settings).get("group.id", ""))


def connector_health(settings: Settings) -> list[ConnectorHealth]:
    """The Debezium connector's state and each task's, from Connect's REST API; Connect not answering, or not
    knowing the connector, is a state of the connector (and leaves its tasks' states as they were)."""
    from tidewater.cdc import connector

    def health(task: int | None, state: str, trace: str | None) -> ConnectorHealth:
        return ConnectorHealth(connector=settings.cdc_connector, task=task, state=state,
                               connect_url=settings.connect_url, trace=trace or "",
                               max_lines=settings.alert_error_max_lines)

    try:
        status = connector.status(settings)
    except connector.ConnectorNotFound as exc:
        return [health(None, "NOT REGISTERED", str(exc))]
    except connector.ConnectError as exc:
        return [health(None, "UNREACHABLE", str(exc))]
    return [health(None, status.connector_state, status.connector_trace),
            *(health(task.id, task.state, task.trace) for task in status.tasks)]


# Any role may read pg_replication_slots and call pg_current_wal_lsn(): the monitor uses the shop's application
# connection (TIDEWATER_SHOP_CONN_ID), not an admin one.
SLOTS_SQL = """
SELECT slot_name, slot_type, database, active, wal_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_bytes,
       safe_wal_size, restart_lsn::text, confirmed_flush_lsn::text,
       current_setting('max_slot_wal_keep_size') AS keep_size
  FROM pg_replication_slots
 ORDER BY slot_name"""


def slot_measurement(row: dict[str, Any], settings: Settings) -> Measurement:
    """One row of SLOTS_SQL as a measurement: WAL retained against the limit; a slot whose WAL was removed
    (wal_status 'lost') is a breach whatever it retains."""
    from tidewater.alerts.messages import slot_lost_detail

    slot = row["slot_name"]
    kind = f"logical slot of database {row['database']}" if row["slot_type"] == "logical" else "physical slot"
    safe = row["safe_wal_size"]
    detail = (f"{kind}, {'active' if row['active'] else 'NOT active (no client streams from it)'}, wal_status "
              f"{row['wal_status']}, restart_lsn {row['restart_lsn']}, confirmed_flush_lsn "
              f"{row['confirmed_flush_lsn']}; the server keeps at most max_slot_wal_keep_size = {row['keep_size']} "
              "for a slot, then invalidates it"
              + (f" ({safe:,} bytes of WAL to go)" if safe is not None else "") + ". A growing value means its "
              "client (for the connector's slot: Debezium) is stopped or behind: see the connector alerts.")
    lost = row["wal_status"] == "lost"
    if lost:
        detail = slot_lost_detail(slot=slot, keep_size=row["keep_size"], connect_url=settings.connect_url,
                                  connector=settings.cdc_connector)
    return Measurement(key=f"slot:{slot}", subject=f"replication slot {slot}", value=row["retained_bytes"],
                       limit=settings.max_slot_lag_bytes, unit="bytes of WAL retained", detail=detail,
                       fault="WAL lost, slot invalidated" if lost else "")


def slot_measurements(settings: Settings) -> list[Measurement]:
    """Every replication slot of the shop's server (a slot holds WAL of the whole server, not one database)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(settings.shop_conninfo(), connect_timeout=10, row_factory=dict_row) as conn:
        rows = conn.execute(SLOTS_SQL).fetchall()
    return [slot_measurement(row, settings) for row in rows]


def measure_all(settings: Settings, lake: Any, consumer: Any, now: datetime) -> tuple[list[Observation], list[str]]:
    """Every observation that could be made, and what could not be measured and why (one group failing does not
    keep the others from being checked)."""
    groups: list[tuple[str, Callable[[], list[Any]]]] = [
        ("the published marts", lambda: [marts_measurement(lake, settings, now)]),
        ("the landed changes", lambda: change_measurements(lake, settings, now)),
        ("the topic lags", lambda: lag_measurements(consumer, settings)),
        ("the Debezium connector", lambda: connector_health(settings)),
        ("the replication slots", lambda: slot_measurements(settings)),
    ]
    observations: list[Observation] = []
    failures: list[str] = []
    for what, measure in groups:
        try:
            observations += measure()
        except Exception as exc:  # reported by the caller, after the other groups are checked
            log.exception("could not measure %s", what)
            failures.append(f"could not measure {what}: {type(exc).__name__}: {exc}")
    return observations, failures


def require_bucket(lake: Any, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    from tidewater.config import ConfigError

    try:
        lake.client.head_bucket(Bucket=lake.bucket)
    except ClientError as exc:
        raise ConfigError(f"lake bucket {lake.bucket!r} is not reachable through connection {settings.lake_conn_id!r} "
                          f"({exc}): check TIDEWATER_LAKE_BUCKET, or run `make stack-up`") from exc


class MeasurementFailed(RuntimeError):
    """Some observations could not be made; the others were checked and mailed."""


def check_freshness(settings: Settings, now: datetime) -> list:
    """Observes everything, mails each breach and recovery once, keeps the state in the lake; then raises
    MeasurementFailed if some group could not be measured (the task's failure email says which)."""
    from tidewater import drain
    from tidewater.alerts import freshness, notify

    lake = drain.open_lake(settings)
    require_bucket(lake, settings)
    # The drain's own group id, only to read its committed offsets: this consumer never subscribes, so it
    # never joins the group or moves its offsets.
    consumer = drain.kafka_consumer(settings)
    try:
        observations, failures = measure_all(settings, lake, consumer, now)
    finally:
        consumer.close()
    store = StateObject(lake)
    transitions = freshness.check(observations, load_state=store.load, save_state=store.save,
                                  send=lambda email: notify.send(settings, email), now=now)
    if failures:
        raise MeasurementFailed("; ".join(failures))
    return transitions
