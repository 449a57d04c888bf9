"""What freshness_monitor observes, from the real systems: the published marts' pointer (in the lake bucket), the
newest landed change of each change table and each drained topic's lag (the DuckLake lake and Kafka), the Debezium
connector's and its tasks' states (Kafka Connect's REST API) and the WAL each replication slot retains (PostgreSQL)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tidewater.alerts.freshness import ConnectorHealth, Measurement, Observation, State, age_minutes
from tidewater.config import Settings
from tidewater.sqltext import identifier

log = logging.getLogger(__name__)

STATE_KEY = "_alerts/freshness_state.json"
MARTS_POINTER_KEY = "marts/_current.json"  # tidewater.gate.publish.POINTER_KEY (not imported: it pulls duckdb)
LAKE = "lake"  # tidewater.lake.catalog.LAKE, the alias the lake catalog is attached as (not imported: duckdb)
POSITIONS = f"{LAKE}.tidewater.drain_positions"  # tidewater.lake.commit.POSITIONS
# A change time up to this far ahead of the monitor's clock counts as now (clock skew between the source
# database and the worker); later ones are future-dated and do not make a table look fresh.
FUTURE_TOLERANCE = timedelta(minutes=5)


class StateObject:
    """The breach state as one JSON object in the lake bucket: durable, and readable by anyone debugging."""

    def __init__(self, bucket: Any, key: str = STATE_KEY) -> None:
        self.bucket, self.key = bucket, key

    def load(self) -> State:
        return self.bucket.get_json(self.key) or {}

    def save(self, state: State) -> None:
        self.bucket.put_json(self.key, state)


def marts_measurement(bucket: Any, settings: Settings, now: datetime) -> Measurement:
    pointer = bucket.get_json(MARTS_POINTER_KEY)
    published = datetime.fromisoformat(pointer["published_at"]) if pointer else None
    return Measurement(
        key="marts", subject="published marts",
        value=age_minutes(published, now) if published else None,
        limit=settings.freshness_max_mart_age_minutes, unit="minutes old",
        detail=(f"publication {pointer['publication_id']} ({bucket.uri(MARTS_POINTER_KEY)}), published at "
                f"{pointer['published_at']}") if pointer else "",
    )


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


def change_tables(con: Any) -> list[str]:
    """The lake's change tables (``lake.main.<table>``), by name."""
    return [row[0] for row in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = 'main' "
        "ORDER BY table_name", [LAKE]).fetchall()]


def read_changes(con: Any, table: str, cutoff: datetime, since: datetime | None = None) -> tuple[
        datetime | None, int, datetime | None]:
    """Of the table's changes dated after `since` (all if None): the newest `_source_ts` not after `cutoff`, and the
    count and newest of those after it."""
    where = "WHERE _source_ts > $since" if since is not None else ""
    return con.execute(
        "SELECT max(_source_ts) FILTER (WHERE _source_ts <= $cutoff), count(*) FILTER (WHERE _source_ts > $cutoff), "
        f"max(_source_ts) FILTER (WHERE _source_ts > $cutoff) FROM {LAKE}.main.{identifier(table)} {where}",
        {"cutoff": cutoff} | ({"since": since} if since is not None else {})).fetchone()


def newest_change(con: Any, table: str, now: datetime, window_minutes: float) -> tuple[
        datetime | None, int, datetime | None]:
    """read_changes with cutoff now + FUTURE_TOLERANCE: the changes of the last `window_minutes` first (DuckLake skips
    data files by their `_source_ts` statistics); a table with none there is read whole."""
    cutoff = now + FUTURE_TOLERANCE
    since = now - timedelta(minutes=window_minutes)
    newest, future_count, future_newest = read_changes(con, table, cutoff, since=since)
    if newest is None:
        newest, future_count, future_newest = read_changes(con, table, cutoff)
    return newest, future_count, future_newest


def change_measurements(con: Any, settings: Settings, now: datetime, catalog_db: str = "") -> list[Measurement]:
    """Per change table of the lake: the newest `_source_ts` not after now (+ FUTURE_TOLERANCE); changes dated later
    are counted in the detail (newest_change, over the limit's span first).
    """
    limit = settings.freshness_max_change_age_minutes
    where_db = f" (DuckLake catalog database {catalog_db})" if catalog_db else ""
    measurements = []
    for table in change_tables(con):
        newest, future_count, future_newest = newest_change(con, table, now, limit)
        if newest is None and not future_count:
            continue  # no changes at all (the table was created, or every change deleted by a replay)
        measurements.append(change_measurement(
            table, newest=newest, where=f"{LAKE}.main.{table}{where_db}", future_count=future_count,
            future_newest=future_newest, cutoff=now + FUTURE_TOLERANCE, limit=limit, now=now))
    return measurements


def lake_positions(con: Any) -> dict[str, tuple[str, dict[int, int]]]:
    """The lake's drain positions: topic → (its Kafka topic id, partition → next offset to drain); empty while no
    drain has committed (the positions table does not exist yet)."""
    from tidewater.lake.commit import protocol_tables_exist

    positions: dict[str, tuple[str, dict[int, int]]] = {}
    if not protocol_tables_exist(con):
        return positions
    for topic, topic_id, partition, next_offset in con.execute(
            f"SELECT topic, topic_id, partition, next_offset FROM {POSITIONS}").fetchall():
        positions.setdefault(topic, (topic_id, {}))[1][partition] = next_offset
    return positions


def topic_ids(settings: Settings, topics: list[str]) -> dict[str, str]:
    """Kafka's id of each topic now (a topic deleted and created again gets a new one)."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    from tidewater.cdc.topics import consumer_config

    if not topics:
        return {}
    admin = AdminClient(consumer_config(settings))
    futures = admin.describe_topics(TopicCollection(topics), request_timeout=30)
    return {topic: str(future.result().topic_id) for topic, future in futures.items()}


def topic_lag(topic: str, watermarks: dict[int, tuple[int, int]], stored: tuple[str, dict[int, int]] | None,
              topic_id: str, limit: float) -> Measurement:
    """Kafka's high watermark minus the lake's position, summed over the partitions; a partition the lake never
    drained (or a topic recreated since the lake last drained it) counts from its low watermark."""
    stored_id, offsets = stored or ("", {})
    recreated = bool(stored_id) and stored_id != topic_id
    if recreated:
        offsets = {}
    lag = sum(max(high - offsets.get(partition, low), 0) for partition, (low, high) in watermarks.items())
    never = sorted(set(watermarks) - set(offsets))
    detail = (f"Kafka's high watermark minus the lake's position ({POSITIONS}), summed over {len(watermarks)} "
              "partition(s)")
    if recreated:
        detail += (f"; the lake's positions belong to an earlier topic of this name (id {stored_id}, now {topic_id}): "
                   "the drain fails until a person accepts the new topic (cdc_drain's accept_recreated_topic), so "
                   "every retained record counts")
    elif never:
        detail += f"; partition(s) {', '.join(map(str, never))} never drained count from the low watermark"
    return Measurement(key=f"lag:{topic}", subject=f"lag of topic {topic}", value=lag, limit=limit,
                       unit="records behind", detail=detail)


def lag_measurements(consumer: Any, con: Any, settings: Settings) -> list[Measurement]:
    """Per drained topic: Kafka's high watermark minus the lake's drain position, over partitions (the consumer
    group's offsets are only a copy for lag tools: tidewater.lake's protocol)."""
    from tidewater import drain

    topics = drain.discover_topics(consumer, settings)
    if not topics:
        return []
    positions = lake_positions(con)
    ids = topic_ids(settings, topics)
    measurements = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        watermarks = {partition: _watermarks(consumer, topic, partition) for partition in metadata.partitions}
        measurements.append(topic_lag(topic, watermarks, positions.get(topic), ids[topic],
                                      settings.freshness_max_topic_lag))
    return measurements


def _watermarks(consumer: Any, topic: str, partition: int) -> tuple[int, int]:
    from confluent_kafka import TopicPartition

    return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30, cached=False)


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


def measure_all(settings: Settings, bucket: Any, lake: Callable[[], Any], consumer: Any,
                now: datetime) -> tuple[list[Observation], list[str]]:
    """Every observation that could be made, and what could not be measured and why (one group failing does not
    keep the others from being checked). `lake` gives the DuckDB connection with the lake catalog attached."""
    groups: list[tuple[str, Callable[[], list[Any]]]] = [
        ("the published marts", lambda: [marts_measurement(bucket, settings, now)]),
        ("the landed changes", lambda: change_measurements(lake(), settings, now, _catalog_db(settings))),
        ("the topic lags", lambda: lag_measurements(consumer, lake(), settings)),
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


def _catalog_db(settings: Settings) -> str:
    from tidewater.config import get_connection

    return get_connection(settings.lake_catalog_conn_id).schema or ""


def require_bucket(bucket: Any, settings: Settings) -> None:
    from botocore.exceptions import ClientError

    from tidewater.config import ConfigError

    try:
        bucket.client.head_bucket(Bucket=bucket.bucket)
    except ClientError as exc:
        raise ConfigError(f"lake bucket {bucket.bucket!r} is not reachable through connection "
                          f"{settings.lake_conn_id!r} ({exc}): check TIDEWATER_LAKE_BUCKET, or run `make stack-up`"
                          ) from exc


class LakeCatalogError(RuntimeError):
    """The lake catalog could not be attached; the message names the connection (never its password)."""


def open_lake_catalog(settings: Settings) -> Any:
    """The lake catalog attached read-only as `lake`. A catalog no drain has created yet reads as an empty lake (no
    change tables, no positions): a new deployment's monitor reports every topic's whole lag, not an error."""
    import duckdb

    from tidewater.lake import catalog

    try:
        return catalog.connect(settings, catalog.LAKE, read_only=True)
    except duckdb.Error as exc:
        if "creating a new DuckLake is explicitly disabled" not in str(exc):
            raise LakeCatalogError(
                f"could not attach the lake catalog read-only through connection {settings.lake_catalog_conn_id!r}: "
                f"{exc}. Check that connection and the catalog database (make stack-up "
                "creates it)") from None
    log.warning("lake catalog of connection %r holds no DuckLake yet (no drain has committed): an empty lake",
                settings.lake_catalog_conn_id)
    con = duckdb.connect()
    con.execute(f"ATTACH ':memory:' AS {catalog.LAKE}")
    return con


class MeasurementFailed(RuntimeError):
    """Some observations could not be made; the others were checked and mailed."""


def check_freshness(settings: Settings, now: datetime) -> list:
    """Observes everything, mails each breach and recovery once, keeps the state in the lake bucket; then raises
    MeasurementFailed if some group could not be measured (the task's failure email says which).

    The lake catalog is attached read-only, once, when the first group needs it (a catalog that cannot be attached
    fails the changes and lag groups, not the others)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from tidewater import drain
    from tidewater.alerts import freshness, notify
    from tidewater.lake.objects import Bucket

    bucket = Bucket(S3Hook(aws_conn_id=settings.lake_conn_id).get_conn(), settings.lake_bucket)
    require_bucket(bucket, settings)
    opened: list[Any] = []

    @functools.cache
    def lake() -> Any:
        opened.append(con := open_lake_catalog(settings))
        return con

    # Only for topic metadata and watermarks: this consumer never subscribes, so it never joins a group.
    consumer = drain.kafka_consumer(settings)
    try:
        observations, failures = measure_all(settings, bucket, lake, consumer, now)
    finally:
        consumer.close()
        for con in opened:
            con.close()
    store = StateObject(bucket)
    transitions = freshness.check(observations, load_state=store.load, save_state=store.save,
                                  send=lambda email: notify.send(settings, email), now=now)
    if failures:
        raise MeasurementFailed("; ".join(failures))
    return transitions
