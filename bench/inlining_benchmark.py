"""What DuckLake's data inlining does for the many tiny commits of quiet tables, on the real stack.

  .venv/bin/python bench/inlining_benchmark.py [--commits 200] [--reads 5]

In a scratch lake (bench/scratch_lake.py: a new bucket on the stack's MinIO and a new catalog database on its
PostgreSQL), one table per way of committing, each getting the same --commits tiny commits of 1-5 change rows
(a change table's shape: key, payload and the drain's metadata columns):

  add-files        what the drain does: each slice written as a Parquet file by pyarrow, uploaded, and registered
                   with ducklake_add_data_files in one transaction (add_data_files never inlines)
  insert-inlined   INSERT of the rows, DuckLake's data_inlining_row_limit = 10 (this version's default): the rows
                   go into the catalog's PostgreSQL tables, no file is written
  insert-files     INSERT of the rows with data_inlining_row_limit = 0: DuckLake writes one Parquet file per commit
  add-files+merged add-files, then ducklake_merge_adjacent_files (what lake_maintenance does): one file
  inlined+flushed  insert-inlined, then ducklake_flush_inlined_data (a maintenance pass could): one file

For each it prints the data files (catalog's list and objects on S3), commit time (total, median and p95 per
commit), and read time of the whole table (median of --reads full scans in a fresh connection, and of a
filtered count), and for inlining the catalog rows. Needs `make stack-up` and `set -a; . .stack/env; set +a`.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from scratch_lake import run_as_minio_root, scratch_lake

from tidewater.config import Settings, get_connection
from tidewater.duck import load_extensions, s3_secret_sql
from tidewater.lake import catalog

SCHEMA = pa.schema([
    ("id", pa.int64()), ("customer_id", pa.int64()), ("status", pa.string()), ("total", pa.decimal128(12, 2)),
    ("created_at", pa.timestamp("us", tz="UTC")), ("_op", pa.string()), ("_source_ts", pa.timestamp("us", tz="UTC")),
    ("_lsn", pa.int64()), ("_tx_id", pa.int64()), ("_kafka_topic", pa.string()), ("_kafka_partition", pa.int32()),
    ("_kafka_offset", pa.int64()), ("_ingested_at", pa.timestamp("us", tz="UTC")),
])
COLUMNS = ("id BIGINT, customer_id BIGINT, status VARCHAR, total DECIMAL(12,2), created_at TIMESTAMPTZ, _op VARCHAR, "
           "_source_ts TIMESTAMPTZ, _lsn BIGINT, _tx_id BIGINT, _kafka_topic VARCHAR, _kafka_partition INTEGER, "
           "_kafka_offset BIGINT, _ingested_at TIMESTAMPTZ")
MODES = ("add-files", "add-files+merged", "insert-inlined", "insert-files", "inlined+flushed")


def slices(commits: int, seed: int = 7) -> list[pa.Table]:
    """`commits` slices of 1-5 change rows, the same for every mode."""
    rng, offset, out = random.Random(seed), 0, []
    for _ in range(commits):
        n, now = rng.randint(1, 5), datetime.now(UTC)
        out.append(pa.table({
            "id": [rng.randint(1, 10_000) for _ in range(n)], "customer_id": [rng.randint(1, 500) for _ in range(n)],
            "status": [rng.choice(["placed", "paid", "shipped"]) for _ in range(n)],
            "total": [Decimal(rng.randint(100, 99_999)) / 100 for _ in range(n)], "created_at": [now] * n,
            "_op": [rng.choice("cu") for _ in range(n)], "_source_ts": [now] * n,
            "_lsn": list(range(offset * 100, (offset + n) * 100, 100)), "_tx_id": [offset] * n,
            "_kafka_topic": ["bench.shop.orders"] * n, "_kafka_partition": [0] * n,
            "_kafka_offset": list(range(offset, offset + n)), "_ingested_at": [now] * n}, schema=SCHEMA))
        offset += n
    return out


def commit_all(lake, table: str, mode: str, data: list[pa.Table]) -> list[float]:
    """Commits each slice as `mode` does; returns the seconds each commit took (upload included)."""
    con, seconds = lake.con, []
    limit = 0 if mode == "insert-files" else 10  # add_data_files ignores it
    con.execute(f"CALL ducklake_set_option('lake', 'data_inlining_row_limit', {limit}, table_name => '{table}')")
    for number, rows in enumerate(data):
        start = time.perf_counter()
        if mode.startswith("add-files"):
            buffer = io.BytesIO()
            pq.write_table(rows, buffer)
            key = f"lake/main/{table}/slice-{number:05d}-{uuid.uuid4().hex[:8]}.parquet"
            lake.bucket.put_parquet(key, buffer.getvalue())
            con.execute("BEGIN TRANSACTION")
            con.execute("CALL ducklake_add_data_files('lake', ?, ?, schema => 'main')", [table, lake.bucket.uri(key)])
            con.execute("COMMIT")
        else:
            con.register("slice", rows)
            con.execute(f"INSERT INTO lake.main.{table} SELECT * FROM slice")
            con.unregister("slice")
        seconds.append(time.perf_counter() - start)
    return seconds


def read_times(settings: Settings, scratch, table: str, reads: int) -> tuple[float, float, int]:
    """Median seconds of a full scan and of a filtered count, each in a fresh connection (a reader's first query
    pays for the catalog and file metadata), and the rows read."""
    scans, counts, rows = [], [], 0
    for _ in range(reads):
        for kind in ("scan", "count"):
            con = duckdb.connect()
            load_extensions(con, "httpfs", "ducklake", "postgres")
            con.execute(s3_secret_sql(get_connection(settings.lake_conn_id)))
            catalog.attach(con, catalog.LAKE, scratch.metadata, scratch.lake.bucket.uri("lake/"), read_only=True)
            start = time.perf_counter()
            if kind == "scan":
                rows = con.execute(f"SELECT * FROM lake.main.{table}").to_arrow_table().num_rows
                scans.append(time.perf_counter() - start)
            else:
                con.execute(f"SELECT count(*) FROM lake.main.{table} WHERE status = 'paid'").fetchone()
                counts.append(time.perf_counter() - start)
            con.close()
    return statistics.median(scans), statistics.median(counts), rows


def catalog_rows(scratch) -> dict[str, int]:
    """Per table, the rows DuckLake holds for it in the catalog's inlined-data tables (PostgreSQL)."""
    with psycopg.connect(scratch.metadata.postgres_conninfo()) as pg:
        tables = pg.execute("SELECT i.table_name, t.table_name FROM ducklake_inlined_data_tables i "
                            "JOIN ducklake_table t USING (table_id) WHERE t.end_snapshot IS NULL").fetchall()
        return {table: pg.execute(f'SELECT count(*) FROM "{inlined}"').fetchone()[0] for inlined, table in tables}


def main() -> None:
    run_as_minio_root()  # the benchmark's own buckets (bench/scratch_lake.py)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--reads", type=int, default=5)
    args = parser.parse_args()
    settings = Settings.from_env()
    data = slices(args.commits)
    print(f"{args.commits} commits of 1-5 rows ({sum(t.num_rows for t in data)} rows) per mode")
    with scratch_lake(settings, "inlining") as scratch:
        lake = scratch.lake
        results = []
        for mode in MODES:
            table = mode.replace("-", "_").replace("+", "_")
            lake.con.execute(f"CREATE TABLE lake.main.{table} ({COLUMNS})")
            seconds = commit_all(lake, table, mode, data)
            extra, start = "", time.perf_counter()
            if mode == "inlined+flushed":
                lake.con.execute(f"CALL ducklake_flush_inlined_data('lake', table_name => '{table}')")
                extra = f"flush {time.perf_counter() - start:.2f} s"
            elif mode == "add-files+merged":
                lake.con.execute(f"CALL ducklake_merge_adjacent_files('lake', '{table}', schema => 'main')")
                extra = f"merge {time.perf_counter() - start:.2f} s"
            now = lake.con.execute("SELECT id FROM lake.current_snapshot()").fetchone()[0]
            fed = lake.con.execute(f"SELECT count(*) FROM ducklake_table_changes('lake', 'main', '{table}', 0, {now}) "
                                   "WHERE change_type = 'insert'").fetchone()[0]
            assert fed == sum(t.num_rows for t in data), f"{mode}: the change feed has {fed} inserts"
            listed = lake.con.execute(f"SELECT count(*) FROM ducklake_list_files('lake', '{table}')").fetchone()[0]
            objects = len(lake.bucket.keys(f"lake/main/{table}/"))
            scan, count, rows = read_times(settings, scratch, table, args.reads)
            assert rows == sum(t.num_rows for t in data), f"{mode}: read {rows} rows"
            p95 = statistics.quantiles(seconds, n=20)[-1]
            results.append((mode, listed, objects, sum(seconds), statistics.median(seconds), p95, scan, count, extra))
        inlined = catalog_rows(scratch)
        print(f"{'mode':<16} {'files':>5} {'on S3':>6} {'commits s':>9} {'median ms':>9} {'p95 ms':>7} "
              f"{'scan ms':>8} {'count ms':>8}")
        for mode, listed, objects, total, median, p95, scan, count, extra in results:
            print(f"{mode:<16} {listed:>5} {objects:>6} {total:>9.2f} {median * 1000:>9.1f} {p95 * 1000:>7.1f} "
                  f"{scan * 1000:>8.1f} {count * 1000:>8.1f}  {extra}")
        print(f"catalog rows in inlined-data tables: {inlined}")


if __name__ == "__main__":
    main()
