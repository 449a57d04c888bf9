"""Full warehouse build vs an incremental run with 1% new data (docs/benchmarks.md, "Warehouse build").

Writes a synthetic lake of N change events (default 1,000,000) into a fresh bucket, in the drain's layout
and schema: one real row per table is taken from the shop's lake as a template and copied N times with
keys, versions, statuses, Kafka offsets, LSNs and timestamps varied, so every column has the drain's
exact type and keys are consistent across tables (the dbt tests pass). Then, in order and each timed:

1. `dbt build --full-refresh` into a fresh DuckDB file (the full build);
2. 1% more events land as new files (a later drain run's worth);
3. `dbt build` (the incremental run the warehouse DAG does after a drain);
4. `dbt build` again with nothing new.

Each build runs dbt in-process in a fresh interpreter (dbtRunner, as the DAG's Cosmos tasks do) and is
timed from dbt's invocation; the whole command's time (what `dbt build` on a shell takes) is printed too.

    .venv/bin/python bench/warehouse_benchmark.py [--events 1000000] [--runs 2]

The bucket is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tidewater.config import REPO_ROOT, Settings, get_connection
from tidewater.drain import lake as layout
from tidewater.duck import connect_lake

FILE_MAX_ROWS = 100_000  # like the drain's bounded files


@dataclass(frozen=True)
class EntityMix:
    """How one table's changes are generated: entities times versions, as a share of all events."""

    table: str
    key: str
    share: float
    versions: int
    # SQL expressions over `entity` (1-based id) and `version` (0-based): the columns to vary.
    columns: dict[str, str]
    # Reference data (customers, products) changes long before the orders that point at it, so every
    # order finds the dimension version valid when it was placed.
    is_reference: bool = False


def mix(events: int) -> list[EntityMix]:
    customers, products = max(events // 20, 10), max(events // 200, 10)
    return [
        EntityMix("customers", "customer_id", 0.10, 2, {"email": "'c' || entity || '@example.com'"},
                  is_reference=True),
        EntityMix("addresses", "address_id", 0.05, 1, {"customer_id": f"1 + entity % {customers}"},
                  is_reference=True),
        EntityMix("products", "product_id", 0.02, 4,
                  {"price": "1 + (entity * 7 + version) % 500"}, is_reference=True),
        EntityMix("orders", "order_id", 0.30, 3,
                  {"customer_id": f"1 + entity % {customers}",
                   "status": "['placed', 'paid', 'shipped'][version + 1]",
                   "placed_at": "timestamptz '2026-01-01 00:00:00+00' + to_seconds(entity)"}),
        EntityMix("order_items", "order_item_id", 0.40, 2,
                  {"order_id": "1 + entity // 2", "product_id": f"1 + entity % {products}",
                   "quantity": "cast(1 + (entity + version) % 5 as integer)"}),
        EntityMix("payments", "payment_id", 0.13, 2,
                  {"order_id": "1 + entity // 2", "status": "['pending', 'captured'][version + 1]"}),
    ]


def write_changes(con, bucket: str, template_bucket: str, entity: EntityMix, first_entity: int, entities: int,
                  first_offset: int, dt: str) -> int:
    """Entities [first_entity, first_entity + entities) with all their versions, as bounded files; returns the
    number of events written."""
    topic = f"shop.shop.{entity.table}"
    template = f"read_parquet('s3://{template_bucket}/{layout.raw_table_prefix(topic)}*/*.parquet', union_by_name=true)"
    events = entities * entity.versions
    # Reference data changes a year before the orders; the rest is spread over January 2026.
    epoch = "timestamptz '2025-01-01 00:00:00+00'" if entity.is_reference else "timestamptz '2026-01-01 00:00:00+00'"
    varied = {
        entity.key: "entity",
        **entity.columns,
        "_op": "case when version = 0 then 'c' else 'u' end",
        "_kafka_topic": f"'{topic}'",
        "_kafka_partition": "0",
        "_kafka_offset": "offset_",
        "_lsn": "1000000 + offset_ * 8",
        "_tx_id": "1000 + offset_",
        "_source_ts": f"{epoch} + to_seconds(entity) + to_milliseconds(version * 10)",
    }
    with_offsets = (f"select {first_entity} + i // {entity.versions} as entity, i % {entity.versions} as version, "
                    f"{first_offset} + i as offset_ from range({events}) as r(i)")
    for start in range(0, events, FILE_MAX_ROWS):
        stop = min(start + FILE_MAX_ROWS, events)
        key = layout.raw_key(topic, dt, 0, first_offset + start, first_offset + stop - 1)
        replaced = ", ".join(f"cast({expression} as {varied_type(con, template, column)}) as {column}"
                             for column, expression in varied.items())
        con.execute(f"""
            copy (
                select template.* replace ({replaced})
                from (select * from {template} limit 1) as template,
                     ({with_offsets} limit {stop - start} offset {start}) as generated
                order by offset_
            ) to 's3://{bucket}/{key}' (format parquet, compression zstd)""")
    return events


_types: dict[tuple[str, str], str] = {}


def varied_type(con, template: str, column: str) -> str:
    if (template, column) not in _types:
        _types[(template, column)] = con.execute(
            f"select typeof({column}) from {template} limit 1").fetchone()[0]
    return _types[(template, column)]


def write_lake(con, bucket: str, template_bucket: str, events: int, offsets: dict[str, int],
               entities_done: dict[str, int], dt: str) -> int:
    written = 0
    for entity in mix(events):
        entities = max(int(events * entity.share) // entity.versions, 1)
        written += write_changes(con, bucket, template_bucket, entity, entities_done.get(entity.table, 0) + 1,
                                 entities, offsets.get(entity.table, 0), dt)
        offsets[entity.table] = offsets.get(entity.table, 0) + entities * entity.versions
        entities_done[entity.table] = entities_done.get(entity.table, 0) + entities
    return written


# dbt in-process, as the warehouse DAG's Cosmos tasks run it (dbtRunner, dbt already imported by the
# scheduler's forkserver): the build's time, without the ~1.5 s a fresh interpreter spends importing dbt.
IN_PROCESS = """
import json, sys, time
from dbt.cli.main import dbtRunner
started = time.perf_counter()
result = dbtRunner().invoke(sys.argv[1:])
print(json.dumps({"build_s": time.perf_counter() - started, "success": result.success}))
"""


@dataclass(frozen=True)
class Build:
    build_s: float  # dbt's build, in-process
    command_s: float  # the whole command, as `dbt build` on the command line takes it


def dbt_build(settings: Settings, bucket: str, warehouse: Path, target: Path, *args: str) -> Build:
    env = {**os.environ, "TIDEWATER_LAKE_BUCKET": bucket, "TIDEWATER_WAREHOUSE_PATH": str(warehouse),
           "DBT_PROFILES_DIR": settings.dbt_project_dir, "DBT_TARGET_PATH": str(target)}
    started = time.perf_counter()
    run = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-c", IN_PROCESS, "build", "--project-dir",
                          settings.dbt_project_dir, "--quiet", *args],
                         env=env, cwd=settings.dbt_project_dir, capture_output=True, text=True)
    command_s = time.perf_counter() - started
    outcome = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else {"success": False}
    if not outcome["success"]:
        raise SystemExit(f"dbt build {' '.join(args)} failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    return Build(outcome["build_s"], command_s)


def print_slowest_nodes(run_results: Path, build: Build, count: int = 8) -> None:
    """Where a build's time goes: dbt's own per-node times against the build's."""
    results = json.loads(run_results.read_text())["results"]
    nodes_s = sum(result["execution_time"] for result in results)
    print(f"  {len(results)} nodes took {nodes_s:.1f} s of the {build.build_s:.1f} s build "
          f"({build.command_s:.1f} s as a command); slowest:")
    for result in sorted(results, key=lambda result: -result["execution_time"])[:count]:
        print(f"    {result['execution_time']:6.2f} s  {result['unique_id']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2, help="full + incremental cycles, each on a fresh warehouse")
    args = parser.parse_args()
    settings = Settings.from_env()
    conn = get_connection(settings.lake_conn_id)
    con = connect_lake(conn)
    import boto3

    s3 = boto3.client("s3", endpoint_url=conn.extra.get("endpoint_url"), aws_access_key_id=conn.login,
                      aws_secret_access_key=conn.password, region_name=conn.extra.get("region_name", "us-east-1"))
    rows = []
    for run in range(args.runs):
        bucket = f"bench-warehouse-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        try:
            offsets: dict[str, int] = {}
            entities: dict[str, int] = {}
            started = time.perf_counter()
            lake_events = write_lake(con, bucket, settings.lake_bucket, args.events, offsets, entities, "2026-01-15")
            print(f"[run {run + 1}] lake of {lake_events:,} events written in {time.perf_counter() - started:.1f} s")
            with tempfile.TemporaryDirectory(prefix="warehouse-bench-") as root:
                warehouse, target = Path(root) / "warehouse.duckdb", Path(root) / "target"
                full = dbt_build(settings, bucket, warehouse, target, "--full-refresh")
                print_slowest_nodes(target / "run_results.json", full)
                new_events = write_lake(con, bucket, settings.lake_bucket, args.events // 100, offsets, entities,
                                        "2026-01-31")
                incremental = dbt_build(settings, bucket, warehouse, target)
                print_slowest_nodes(target / "run_results.json", incremental)
                nothing_new = dbt_build(settings, bucket, warehouse, target)
                size_mib = warehouse.stat().st_size / 2**20
            rows.append((lake_events, new_events, full, incremental, nothing_new, size_mib))
            ratio = incremental.build_s / full.build_s
            print(f"[run {run + 1}] full {full.build_s:.1f} s, incremental (+{new_events:,}) "
                  f"{incremental.build_s:.1f} s = {ratio:.0%}, nothing new {nothing_new.build_s:.1f} s, "
                  f"warehouse {size_mib:.0f} MiB")
        finally:
            keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                    for item in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[start:start + 1000]]})
            s3.delete_bucket(Bucket=bucket)
    print("\n| lake events | new events | full build s | incremental s | incremental / full | nothing new s "
          "| as commands: full / incremental s (ratio) |")
    print("|---|---|---|---|---|---|---|")
    for lake_events, new_events, full, incremental, nothing_new, _ in rows:
        print(f"| {lake_events:,} | {new_events:,} | {full.build_s:.1f} | {incremental.build_s:.1f} "
              f"| {incremental.build_s / full.build_s:.0%} | {nothing_new.build_s:.1f} "
              f"| {full.command_s:.1f} / {incremental.command_s:.1f} ({incremental.command_s / full.command_s:.0%}) |")


if __name__ == "__main__":
    main()
