"""The source side: one PostgreSQL snapshot, its rows' hashes, and waiting until the pipeline holds it.

A reconciliation compares PostgreSQL in one REPEATABLE READ transaction with the warehouse's state as
of that transaction's snapshot. The snapshot is taken by the transaction's first statement, which also
reads ``pg_current_wal_lsn()``: every transaction the snapshot sees committed before that LSN. So once
the Debezium slot's confirmed_flush_lsn passes it, every change the snapshot sees is in Kafka below the
CDC topics' high watermarks read after that. The lake holds them from the first DuckLake snapshot on
whose positions (``tidewater.drain_positions``) reach those watermarks and stay there (``lake_coverage``;
a replay moving a position back below a watermark starts the wait again). The warehouse holds them once
every staging model has read the lake up to that snapshot (its latest ``lake_loads`` row; compare.py).
The warehouse then keeps the changes of transactions the snapshot sees (``visible_sql``), nothing later.

The rows' hashes (key, hash; ``canonical``) are streamed through a server-side cursor into one Parquet
object per table in the lake bucket (``_reconcile/runs/<run id>/``, removed when the run ends), so the
snapshot can end before the (possibly long) wait for the warehouse.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from tidewater.cdc import connector
from tidewater.config import Settings
from tidewater.lake import Lake
from tidewater.lake.catalog import LAKE
from tidewater.reconcile import canonical
from tidewater.sqltext import literal
from tidewater.tables import Table, registry

PREFIX = "_reconcile"
BATCH_ROWS = 50_000
SOURCE_SCHEMA = pa.schema([("key", pa.string()), ("row_hash", pa.int64())])


class ReconcileTimeout(TimeoutError):
    """The pipeline did not catch up with the snapshot in time; the message says where it stopped."""


def lsn_number(lsn: str) -> int:
    """'16/B374D848' → the LSN as the integer Debezium puts in `source.lsn` (the lake's `_lsn`)."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class TableSnapshot:
    table: str
    key: str  # the primary key column (PostgreSQL name)
    columns: list[dict[str, Any]]  # canonical.Column fields, in column order
    rows: int
    checksum: int  # the exact sum of the rows' 60-bit hashes: past 2^64 from 17 rows on
    hashes_key: str  # lake key of the (key, row_hash) Parquet object


@dataclass(frozen=True)
class SourceSnapshot:
    run_id: str
    taken_at: str  # ISO 8601, PostgreSQL's now()
    lsn: str  # pg_current_wal_lsn() as PostgreSQL writes it
    xmin: int
    xmax: int
    xip: list[int]  # transactions in progress when the snapshot was taken
    tables: list[TableSnapshot] = field(default_factory=list)

    @property
    def lsn_number(self) -> int:
        return lsn_number(self.lsn)

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as JSON whose integers fit 64 bits (XCom travels as msgpack): checksums as decimal text."""
        data = asdict(self)
        for table in data["tables"]:
            table["checksum"] = str(table["checksum"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSnapshot:
        tables = [TableSnapshot(**{**table, "checksum": int(table["checksum"])}) for table in data.get("tables", [])]
        return cls(**{**data, "tables": tables})

    def visible_sql(self, tx_column: str = "_tx_id") -> str:
        """DuckDB SQL true for a change whose transaction this snapshot sees as committed.

        Transaction ids compare as PostgreSQL compares them, modulo 2^32 (Debezium's txId is the 32-bit
        xid; pg_current_snapshot() gives 64-bit ones): before xmax and not in progress.
        """
        xid = f"({tx_column} % 4294967296)"
        in_progress = ", ".join(str(int(x) % 2**32) for x in self.xip)  # int(): a snapshot read back from JSON
        precedes = f"(({xid} - {int(self.xmax) % 2**32} + 4294967296) % 4294967296) >= 2147483648"
        not_running = f" and {xid} not in ({in_progress})" if in_progress else ""
        return f"({tx_column} is null or ({precedes}{not_running}))"


def _columns(conn: Any, table: Table) -> tuple[str, list[canonical.Column]]:
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                  coalesce(a.attnum = ANY (i.indkey::int2[]), false)
           FROM pg_attribute a
           LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
           WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""", (table.qualified_name,)).fetchall()
    keys = [name for name, _, is_key in rows if is_key]
    if len(keys) != 1:
        raise ValueError(f"{table.qualified_name} has primary key columns {keys}: reconciliation needs exactly one")
    columns = [canonical.Column(name, pg_type, table.warehouse_column(name)) for name, pg_type, _ in rows]
    return keys[0], columns


def _hash_query(table: Table, key: str, columns: list[canonical.Column]) -> sql.Composed:
    values = [canonical.pg_value(column, sql.Identifier(column.name).as_string()) for column in columns]
    return sql.SQL("SELECT {key}::text, " + canonical.pg_row_hash(values) + " FROM {table}").format(
        key=sql.Identifier(key), table=sql.Identifier(table.schema, table.name))


def _stream_hashes(conn: Any, query: sql.Composed, name: str) -> Iterable[pa.RecordBatch]:
    with conn.cursor(name=name) as cursor:  # server-side: rows arrive in batches, never all at once
        cursor.itersize = BATCH_ROWS
        cursor.execute(query)
        while rows := cursor.fetchmany(BATCH_ROWS):
            keys, hashes = zip(*rows, strict=True)
            yield pa.record_batch([pa.array(keys, pa.string()), pa.array(hashes, pa.int64())], schema=SOURCE_SCHEMA)


def take_snapshot(settings: Settings, lake: Lake, run_id: str,
                  tables: Iterable[Table] | None = None) -> SourceSnapshot:
    """Reads the source in one REPEATABLE READ, read-only transaction; writes each table's hashes to the lake's
    bucket."""
    import psycopg

    with psycopg.connect(settings.shop_conninfo()) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            # The first statement takes the snapshot; the LSN read in it is past every commit it sees.
            snap, lsn, taken_at = conn.execute(
                "SELECT pg_current_snapshot()::text, pg_current_wal_lsn()::text, now()").fetchone()
            xmin, xmax, xip = snap.split(":")
            snapshot = SourceSnapshot(run_id=run_id, taken_at=taken_at.isoformat(), lsn=lsn, xmin=int(xmin),
                                      xmax=int(xmax), xip=[int(x) for x in xip.split(",") if x])
            for table in registry() if tables is None else tables:
                key, columns = _columns(conn, table)
                hashes_key = f"{PREFIX}/runs/{run_id}/source/{table.name}.parquet"
                buffer, rows, checksum = io.BytesIO(), 0, 0
                with pq.ParquetWriter(buffer, SOURCE_SCHEMA) as writer:
                    for batch in _stream_hashes(conn, _hash_query(table, key, columns), f"reconcile_{table.name}"):
                        writer.write_batch(batch)
                        rows += batch.num_rows
                        checksum += sum(batch.column(1).to_pylist())
                lake.bucket.put_parquet(hashes_key, buffer.getvalue())
                snapshot.tables.append(TableSnapshot(
                    table=table.name, key=key, columns=[asdict(column) for column in columns], rows=rows,
                    checksum=checksum, hashes_key=hashes_key))
    return snapshot


def _poll(what: str, probe: Callable[[], tuple[bool, str]], timeout_s: float, every_s: float = 1.0,
          on_slow: Callable[[], None] | None = None, slow_after_s: float | None = None) -> None:
    start = time.monotonic()
    nudged = False
    while True:
        done, state = probe()
        if done:
            return
        elapsed = time.monotonic() - start
        if on_slow and not nudged and slow_after_s is not None and elapsed > slow_after_s:
            on_slow()
            nudged = True
        if elapsed > timeout_s:
            raise ReconcileTimeout(f"{what} within {timeout_s:.0f} s: {state}")
        time.sleep(every_s)


def wait_for_slot(settings: Settings, snapshot: SourceSnapshot, slot: str, timeout_s: float) -> None:
    """Waits until Debezium has confirmed the snapshot's LSN on its slot (every change it sees is in Kafka).

    The slot moves when Debezium sees a change of the shop database (the heartbeat's action query makes
    one every heartbeat interval where it is configured). If it has not moved after two heartbeat intervals,
    a nudge (tidewater.cdc.connector.nudge_slot: a signal Debezium only logs) makes it move.
    """
    import psycopg

    with psycopg.connect(settings.shop_conninfo(), autocommit=True) as conn:
        def probe() -> tuple[bool, str]:
            row = conn.execute("SELECT confirmed_flush_lsn::text, confirmed_flush_lsn >= %s::pg_lsn "
                               "FROM pg_replication_slots WHERE slot_name = %s", (snapshot.lsn, slot)).fetchone()
            if row is None:
                return False, f"replication slot {slot!r} does not exist (is the connector registered?)"
            return bool(row[1]), f"slot {slot!r} confirmed {row[0]}, the snapshot is at {snapshot.lsn}"

        _poll("Debezium did not confirm the snapshot's WAL position", probe, timeout_s,
              on_slow=lambda: connector.nudge_slot(conn),
              slow_after_s=2 * settings.cdc_heartbeat_ms / 1000)


def high_watermarks(consumer: Any, topics: Iterable[str]) -> dict[str, dict[int, int]]:
    """topic → partition → Kafka's high watermark now."""
    from confluent_kafka import TopicPartition

    marks: dict[str, dict[int, int]] = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        marks[topic] = {partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)[1]
                        for partition in metadata.partitions}
    return marks


@dataclass(frozen=True)
class LakeCoverage:
    """Whether the lake holds every CDC record below the watermarks: `snapshot` is the first DuckLake snapshot from
    which on its positions reach them (None while they do not), `behind` the partitions that do not now."""

    snapshot: int | None
    behind: list[str]


def _covered(rows: dict[int, tuple[str, int, int]], marks: dict[str, dict[int, int]]) -> list[str]:
    positions = {(topic, partition): offset for topic, partition, offset in rows.values()}
    behind = []
    for topic, partitions in sorted(marks.items()):
        for partition, mark in sorted(partitions.items()):
            position = positions.get((topic, partition))
            if mark > 0 and (position is None or position < mark):
                at = "never drained" if position is None else f"at {position}"
                behind.append(f"{topic}[{partition}] {at} < {mark}")
    return behind


def lake_coverage(con: duckdb.DuckDBPyConnection, marks: dict[str, dict[int, int]]) -> LakeCoverage:
    """Replays the history of the lake's positions (``ducklake_table_changes`` of ``tidewater.drain_positions``
    since the oldest snapshot the lake keeps) to find the first snapshot from which on they reach `marks`."""
    from tidewater.lake import commit

    oldest, current = con.execute(f"SELECT min(snapshot_id), max(snapshot_id) FROM {LAKE}.snapshots()").fetchone()
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND "
                         "table_schema = 'tidewater' AND table_name = 'drain_positions'", [LAKE]).fetchone()[0]
    topics = sorted(marks)
    if not exists or not topics:
        behind = _covered({}, marks)
        return LakeCoverage(None if behind else current, behind)
    placeholders = ", ".join("?" for _ in topics)
    try:  # the positions as of the oldest snapshot kept (the table may be younger)
        base = con.execute(f"SELECT rowid, topic, partition, next_offset FROM {commit.POSITIONS} "
                           f"AT (VERSION => {int(oldest)}) WHERE topic IN ({placeholders})", topics).fetchall()
    except duckdb.CatalogException:
        base = []
    rows = {rowid: (topic, partition, offset) for rowid, topic, partition, offset in base}
    changes = con.execute(
        f"SELECT snapshot_id, change_type, rowid, topic, partition, next_offset FROM ducklake_table_changes("
        f"{literal(LAKE)}, 'tidewater', 'drain_positions', {int(oldest) + 1}, {int(current)}) "
        f"WHERE topic IN ({placeholders}) ORDER BY snapshot_id, change_type = 'insert', rowid",
        topics).fetchall() if current > oldest else []
    since = None if _covered(rows, marks) else oldest
    for index, (snapshot, change_type, rowid, topic, partition, offset) in enumerate(changes):
        if change_type in ("delete", "update_preimage"):
            rows.pop(rowid, None)
        else:
            rows[rowid] = (topic, partition, offset)
        if index + 1 == len(changes) or changes[index + 1][0] != snapshot:  # the snapshot's last change
            covered = not _covered(rows, marks)
            since = (since if since is not None else snapshot) if covered else None
    behind = _covered(rows, marks)
    return LakeCoverage(None if behind else since, behind)


def wait_for_lake(con: duckdb.DuckDBPyConnection, marks: dict[str, dict[int, int]], timeout_s: float,
                  every_s: float = 5.0) -> int:
    """Waits until the lake's positions reach every CDC partition's watermark; returns the covering snapshot."""
    found: list[int] = []

    def probe() -> tuple[bool, str]:
        coverage = lake_coverage(con, marks)
        if coverage.snapshot is not None:
            found.append(coverage.snapshot)
        return coverage.snapshot is not None, (f"the lake's positions are behind: {'; '.join(coverage.behind[:5])} "
                                               "(is cdc_drain running? `make drain` runs it once)")

    _poll("the drain did not land the CDC topics up to the snapshot", probe, timeout_s, every_s=every_s)
    return found[-1]
