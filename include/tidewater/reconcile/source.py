"""The source side: one PostgreSQL snapshot, its rows' hashes, and waiting until the pipeline holds it.

A reconciliation compares PostgreSQL in one REPEATABLE READ transaction with the warehouse's state as
of that transaction's snapshot. The snapshot is taken by the transaction's first statement, which also
reads ``pg_current_wal_lsn()``: every transaction the snapshot sees committed before that LSN. So once
the Debezium slot's confirmed_flush_lsn passes it, every change the snapshot sees is in Kafka; once the
drain has committed each CDC topic up to the high watermark read after that, it is in the lake; once the
warehouse has loaded every lake file starting below those watermarks, it is in the warehouse. The
warehouse then keeps the changes of transactions the snapshot sees (``visible_sql``), nothing later.

The rows' hashes (key, hash; ``canonical``) are streamed through a server-side cursor into one Parquet
object per table in the lake, so the snapshot can end before the (possibly long) wait for the warehouse.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from tidewater.config import Settings
from tidewater.reconcile import canonical
from tidewater.reconcile.tables import TABLES, ReconciledTable

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
    checksum: int
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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSnapshot:
        tables = [TableSnapshot(**table) for table in data.get("tables", [])]
        return cls(**{**data, "tables": tables})

    def visible_sql(self, tx_column: str = "_tx_id") -> str:
        """DuckDB SQL true for a change whose transaction this snapshot sees as committed.

        Transaction ids compare as PostgreSQL compares them, modulo 2^32 (Debezium's txId is the 32-bit
        xid; pg_current_snapshot() gives 64-bit ones): before xmax and not in progress.
        """
        xid = f"({tx_column} % 4294967296)"
        in_progress = ", ".join(str(x % 2**32) for x in self.xip)
        precedes = f"(({xid} - {self.xmax % 2**32} + 4294967296) % 4294967296) >= 2147483648"
        not_running = f" and {xid} not in ({in_progress})" if in_progress else ""
        return f"({tx_column} is null or ({precedes}{not_running}))"


def _columns(conn: Any, table: ReconciledTable) -> tuple[str, list[canonical.Column]]:
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                  coalesce(a.attnum = ANY (i.indkey::int2[]), false)
           FROM pg_attribute a
           LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
           WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""", (f"shop.{table.name}",)).fetchall()
    keys = [name for name, _, is_key in rows if is_key]
    if len(keys) != 1:
        raise ValueError(f"shop.{table.name} has primary key columns {keys}: reconciliation needs exactly one")
    columns = [canonical.Column(name, pg_type, table.warehouse_column(name)) for name, pg_type, _ in rows]
    return keys[0], columns


def _hash_query(table: ReconciledTable, key: str, columns: list[canonical.Column]) -> sql.Composed:
    values = [canonical.pg_value(column, sql.Identifier(column.name).as_string()) for column in columns]
    return sql.SQL("SELECT {key}::text, " + canonical.pg_row_hash(values) + " FROM {table}").format(
        key=sql.Identifier(key), table=sql.Identifier("shop", table.name))


def _stream_hashes(conn: Any, query: sql.Composed, name: str) -> Iterable[pa.RecordBatch]:
    with conn.cursor(name=name) as cursor:  # server-side: rows arrive in batches, never all at once
        cursor.itersize = BATCH_ROWS
        cursor.execute(query)
        while rows := cursor.fetchmany(BATCH_ROWS):
            keys, hashes = zip(*rows, strict=True)
            yield pa.record_batch([pa.array(keys, pa.string()), pa.array(hashes, pa.int64())], schema=SOURCE_SCHEMA)


def take_snapshot(settings: Settings, lake: Any, run_id: str,
                  tables: Iterable[ReconciledTable] = TABLES) -> SourceSnapshot:
    """Reads the source in one REPEATABLE READ, read-only transaction; writes each table's hashes to the lake."""
    import psycopg

    with psycopg.connect(settings.shop_conninfo(admin=True)) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            # The first statement takes the snapshot; the LSN read in it is past every commit it sees.
            snap, lsn, taken_at = conn.execute(
                "SELECT pg_current_snapshot()::text, pg_current_wal_lsn()::text, now()").fetchone()
            xmin, xmax, xip = snap.split(":")
            snapshot = SourceSnapshot(run_id=run_id, taken_at=taken_at.isoformat(), lsn=lsn, xmin=int(xmin),
                                      xmax=int(xmax), xip=[int(x) for x in xip.split(",") if x])
            for table in tables:
                key, columns = _columns(conn, table)
                hashes_key = f"{PREFIX}/runs/{run_id}/source/{table.name}.parquet"
                buffer, rows, checksum = io.BytesIO(), 0, 0
                with pq.ParquetWriter(buffer, SOURCE_SCHEMA) as writer:
                    for batch in _stream_hashes(conn, _hash_query(table, key, columns), f"reconcile_{table.name}"):
                        writer.write_batch(batch)
                        rows += batch.num_rows
                        checksum += sum(batch.column(1).to_pylist())
                lake.put_parquet(hashes_key, buffer.getvalue())
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
    a no-op update of one product (a change with no new values; the warehouse's versions are unaffected as
    of this snapshot) makes it move.
    """
    import psycopg

    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        def probe() -> tuple[bool, str]:
            row = conn.execute("SELECT confirmed_flush_lsn::text, confirmed_flush_lsn >= %s::pg_lsn "
                               "FROM pg_replication_slots WHERE slot_name = %s", (snapshot.lsn, slot)).fetchone()
            if row is None:
                return False, f"replication slot {slot!r} does not exist (is the connector registered?)"
            return bool(row[1]), f"slot {slot!r} confirmed {row[0]}, the snapshot is at {snapshot.lsn}"

        def nudge() -> None:
            conn.execute("UPDATE shop.products SET updated_at = updated_at "
                         "WHERE product_id = (SELECT min(product_id) FROM shop.products)")

        _poll("Debezium did not confirm the snapshot's WAL position", probe, timeout_s, on_slow=nudge,
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


def drain_behind(consumer: Any, marks: dict[str, dict[int, int]]) -> list[str]:
    """The partitions whose committed offset (of the consumer's group) is still below its watermark."""
    from confluent_kafka import TopicPartition

    behind = []
    for topic, partitions in marks.items():
        wanted = [TopicPartition(topic, partition) for partition in partitions]
        for committed in consumer.committed(wanted, timeout=30):
            low, _ = consumer.get_watermark_offsets(committed, timeout=30)
            mark = partitions[committed.partition]
            position = committed.offset if committed.offset >= 0 else low
            if position < mark:
                behind.append(f"{topic}[{committed.partition}] committed {position} < {mark}")
    return behind


def wait_for_drain(consumer: Any, marks: dict[str, dict[int, int]], group: str, timeout_s: float,
                   every_s: float = 5.0) -> None:
    """Waits until the drain (consumer group `group`) has committed every CDC partition up to `marks`."""
    def probe() -> tuple[bool, str]:
        behind = drain_behind(consumer, marks)
        return not behind, (f"consumer group {group!r} is behind: {'; '.join(behind[:5])} "
                            "(is cdc_drain running? `make drain` runs it once)")

    _poll("the drain did not land the CDC topics up to the snapshot", probe, timeout_s, every_s=every_s)


def unloaded_lake_files(lake: Any, loaded: set[str], marks: dict[str, dict[int, int]]) -> list[str]:
    """Lake files holding changes below the watermarks that the warehouse has not loaded (`loaded`: its URIs)."""
    from tidewater.lake import objects as layout

    missing = []
    for topic, partitions in marks.items():
        for key in lake.keys(layout.raw_table_prefix(topic)):
            file = layout.parse_key(key)
            if file is None or file.topic != topic or file.partition not in partitions:
                continue
            if file.first_offset < partitions[file.partition] and lake.uri(key) not in loaded:
                missing.append(lake.uri(key))
    return sorted(missing)
