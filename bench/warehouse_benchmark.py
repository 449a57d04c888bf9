"""Warehouse build on a local DuckDB file vs on a DuckLake catalog, full and incremental (docs/benchmarks.md).

Writes a synthetic lake of N change events (default 1,000,000) into a fresh DuckLake lake (a new bucket and
catalog database): one real row per table, drained from the shop's own topics into a scratch lake by
tidewater.drain.drainer, is the template, copied N times with keys, versions, statuses, Kafka offsets,
LSNs and timestamps varied, so every column has the drain's exact type and keys are consistent across tables
(the dbt tests pass). Its files are Parquet files of at most FILE_MAX_ROWS rows registered with
ducklake_add_data_files in one commit per table, as a drain lands them. Then, per round and contender:

1. `dbt build --full-refresh` into a fresh warehouse (the full build);
2. 1% more events land, one more commit per table (a later drain's worth);
3. `dbt build` (the incremental run the warehouse DAG does after a drain);
4. `dbt build` again with nothing new.

Contenders (the same dbt project, the same lake, dbt/profiles.yml's target for the file):
- file:     the warehouse is a local DuckDB file (today's `local` target);
- ducklake: the warehouse is a DuckLake catalog (metadata in a new PostgreSQL database owned by the catalog
            writer, data files under the lake bucket's warehouse/ prefix), the default database of the dbt
            connection: a second target written into a temporary profiles dir, never into dbt/profiles.yml.
Within a round, each step runs for both contenders next to each other, in alternating order, so drift on a
shared machine hits both alike; the ratios are per round, then their median.

Each build runs dbt in-process in a fresh interpreter (dbtRunner, as the DAG's Cosmos tasks do) and is timed
from dbt's invocation; the whole command's time (what `dbt build` on a shell takes) is printed too.

    .venv/bin/python bench/warehouse_benchmark.py [--events 1000000] [--rounds 3] [--contenders file,ducklake]

The lake, the template lake and every warehouse are removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import yaml
from scratch_lake import ScratchLake, create_database, drop_database, run_as_minio_root, scratch_lake

from tidewater import drain
from tidewater.cdc.connector import table_topic
from tidewater.config import REPO_ROOT, Settings
from tidewater.drain import drainer
from tidewater.lake import objects as layout
from tidewater.tables import registry

FILE_MAX_ROWS = 100_000  # like the drain's bounded files
TABLES = registry().names


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


def templates(settings: Settings) -> dict[str, pa.Table]:
    """One change row (create or update) per table, as the drain lands it: drained from the shop's topics into a
    scratch lake that is removed again."""
    found: dict[str, pa.Table] = {}
    with scratch_lake(settings, "bench_tpl") as scratch:
        consumer = drain.kafka_consumer(settings, group_id=f"bench-warehouse-{uuid.uuid4().hex[:6]}")
        for table in TABLES:
            topic = table_topic(settings, table)
            drainer.drain_topic(consumer, scratch.lake, topic, drain.kafka_topic_id(settings, topic),
                                drainer.DrainLimits(max_records_per_run=2_000))
            row = scratch.lake.con.execute(f"select * from lake.main.{table} where _op in ('c', 'r', 'u') "
                                           "limit 1").to_arrow_table()
            if row.num_rows == 0:
                raise SystemExit(f"{topic} holds no create or update: run the simulator first (make demo)")
            found[table] = row
        consumer.close()
    return found


class LakeWriter:
    """Writes generated changes into the benchmark's lake as a drain would: bounded Parquet files, one commit per
    table registering them."""

    def __init__(self, scratch: ScratchLake, rows: dict[str, pa.Table]) -> None:
        self.scratch, self.con = scratch, scratch.lake.con
        self.offsets: dict[str, int] = {}
        self.entities: dict[str, int] = {}
        self.commits = 0
        for table, row in rows.items():
            self.con.register(f"template_{table}", row)
            self.con.execute(f"create table lake.main.{table} as select * from template_{table} where false")
        self.types: dict[str, dict[str, str]] = {}
        for table in rows:
            relation = self.con.sql(f"select * from template_{table}")
            self.types[table] = dict(zip(relation.columns, map(str, relation.types), strict=True))

    def write(self, events: int, dt: str) -> int:
        written = 0
        for entity in mix(events):
            entities = max(int(events * entity.share) // entity.versions, 1)
            written += self._write_table(entity, self.entities.get(entity.table, 0) + 1, entities,
                                         self.offsets.get(entity.table, 0), dt)
            self.offsets[entity.table] = self.offsets.get(entity.table, 0) + entities * entity.versions
            self.entities[entity.table] = self.entities.get(entity.table, 0) + entities
        return written

    def _write_table(self, entity: EntityMix, first_entity: int, entities: int, first_offset: int, dt: str) -> int:
        """Entities [first_entity, first_entity + entities) with all their versions, as bounded files in one
        commit; returns the number of events written."""
        topic = f"shop.shop.{entity.table}"
        types = self.types[entity.table]
        events = entities * entity.versions
        # Reference data changes a year before the orders; the rest is spread over January 2026.
        epoch = "timestamptz '2025-01-01 00:00:00+00'" if entity.is_reference else \
            "timestamptz '2026-01-01 00:00:00+00'"
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
        replaced = ", ".join(f"cast({expression} as {types[column]}) as {column}"
                             for column, expression in varied.items())
        with_offsets = (f"select {first_entity} + i // {entity.versions} as entity, i % {entity.versions} as version, "
                        f"{first_offset} + i as offset_ from range({events}) as r(i)")
        uris = []
        run = uuid.uuid4().hex[:12]
        for start in range(0, events, FILE_MAX_ROWS):
            stop = min(start + FILE_MAX_ROWS, events)
            uri = self.scratch.lake.bucket.uri(layout.data_key(topic, dt, 0, first_offset + start,
                                                               first_offset + stop - 1, run))
            self.con.execute(f"""
                copy (
                    select template.* replace ({replaced})
                    from template_{entity.table} as template,
                         ({with_offsets} limit {stop - start} offset {start}) as generated
                    order by offset_
                ) to '{uri}' (format parquet, compression zstd)""")
            uris.append(uri)
        self.con.execute("begin transaction")
        self.con.execute("call ducklake_add_data_files('lake', ?, ?, schema => 'main')", [entity.table, uris])
        self.con.execute("commit")
        self.commits += 1
        return events


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
    nodes: list[tuple[float, str]]  # dbt's per-node times, slowest first


@dataclass
class Warehouse:
    """Where a contender's dbt builds go: the env and profiles dir its dbt runs with."""

    name: str
    env: dict[str, str]
    target: Path

    def size_mib(self) -> float:
        """The warehouse file's size (nan for a DuckLake warehouse: its data is on S3)."""
        path = Path(self.env["TIDEWATER_WAREHOUSE_PATH"]) if self.name == "file" else None
        return path.stat().st_size / 2**20 if path is not None and path.is_file() else float("nan")


def ducklake_profiles(profiles_dir: Path, metadata_conninfo: str, data_path: str) -> None:
    """dbt/profiles.yml's `local` target with the warehouse moved into a DuckLake catalog `wh`, the connection's
    default database (``SET schema`` is what ``USE wh`` does, on every cursor), as target `ducklake`."""
    profiles = yaml.safe_load((REPO_ROOT / "dbt" / "profiles.yml").read_text())
    local = profiles["tidewater"]["outputs"]["local"]
    target = {**local, "path": ":memory:", "database": "wh",
              "attach": [*local["attach"], {"path": "ducklake:postgres:" + metadata_conninfo, "alias": "wh",
                                            "options": {"metadata_schema": "public", "data_path": data_path}}],
              "settings": {**local["settings"], "schema": "wh.main"}}
    profiles["tidewater"] = {"target": "ducklake", "outputs": {"ducklake": target}}
    (profiles_dir / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False))


@contextmanager
def warehouse(settings: Settings, kind: str, scratch: ScratchLake, root: Path) -> Iterator[Warehouse]:
    """A fresh, empty warehouse of one contender, removed afterwards."""
    token = uuid.uuid4().hex[:8]
    base = {**os.environ, **scratch.env, "DBT_TARGET_PATH": str(root / f"target-{kind}-{token}")}
    if kind == "file":
        path = root / f"warehouse-{token}.duckdb"
        try:
            yield Warehouse(kind, {**base, "TIDEWATER_WAREHOUSE_PATH": str(path),
                                   "DBT_PROFILES_DIR": settings.dbt_project_dir}, root / f"target-{kind}-{token}")
        finally:
            path.unlink(missing_ok=True)
        return
    name = f"bench_wh_{token}"
    create_database(settings, name, scratch.metadata.login)
    try:
        profiles_dir = root / f"profiles-{token}"
        profiles_dir.mkdir()
        ducklake_profiles(profiles_dir, replace(scratch.metadata, schema=name).postgres_conninfo(),
                          scratch.lake.bucket.uri(f"warehouse/{token}/"))
        yield Warehouse(kind, {**base, "DBT_PROFILES_DIR": str(profiles_dir)}, root / f"target-{kind}-{token}")
    finally:
        drop_database(settings, name)


def dbt_build(settings: Settings, where: Warehouse, *args: str) -> Build:
    started = time.perf_counter()
    run = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-c", IN_PROCESS, "build", "--project-dir",
                          settings.dbt_project_dir, "--quiet", *args],
                         env=where.env, cwd=settings.dbt_project_dir, capture_output=True, text=True)
    command_s = time.perf_counter() - started
    outcome = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 and run.stdout.strip() \
        else {"success": False}
    if not outcome["success"]:
        raise SystemExit(f"[{where.name}] dbt build {' '.join(args)} failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    results = json.loads((where.target / "run_results.json").read_text())["results"]
    nodes = sorted(((r["execution_time"], r["unique_id"]) for r in results), reverse=True)
    return Build(outcome["build_s"], command_s, nodes)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def _print_build(kind: str, step: str, build: Build) -> None:
    slowest = ", ".join(f"{name.split('.')[-1]} {seconds:.2f}" for seconds, name in build.nodes[:4])
    print(f"  {kind:8} {step:11} {build.build_s:6.1f} s ({build.command_s:.1f} s as a command; "
          f"{len(build.nodes)} nodes, {sum(s for s, _ in build.nodes):.1f} s in nodes; slowest: {slowest}) "
          f"{_load()}", flush=True)


STEPS = ("full", "incremental", "nothing new")


def bench(settings: Settings, rows: dict[str, pa.Table], events: int, rounds: int, kinds: list[str]) -> dict:
    """Every round: full builds, 1% more events, incremental builds, builds with nothing new, for each contender."""
    results: dict[str, dict[str, list[Build]]] = {kind: {step: [] for step in STEPS} for kind in kinds}
    with scratch_lake(settings, "bench_wh") as scratch, tempfile.TemporaryDirectory(prefix="warehouse-bench-") as tmp:
        writer = LakeWriter(scratch, rows)
        started = time.perf_counter()
        lake_events = writer.write(events, "2026-01-15")
        print(f"lake of {lake_events:,} events written in {time.perf_counter() - started:.1f} s", flush=True)
        for round_ in range(rounds):
            order = kinds if round_ % 2 == 0 else list(reversed(kinds))
            print(f"[round {round_ + 1}] {events:,} events, order {', '.join(order)}", flush=True)
            with contextlib.ExitStack() as stack:
                houses = {kind: stack.enter_context(warehouse(settings, kind, scratch, Path(tmp))) for kind in order}
                for kind in order:
                    build = dbt_build(settings, houses[kind], "--full-refresh")
                    results[kind]["full"].append(build)
                    _print_build(kind, "full", build)
                new_events = writer.write(events // 100, "2026-01-31")
                for step in STEPS[1:]:
                    for kind in order:
                        build = dbt_build(settings, houses[kind])
                        results[kind][step].append(build)
                        _print_build(kind, step, build)
                for kind in order:
                    size = houses[kind].size_mib()
                    if size == size:
                        print(f"  {kind} warehouse file {size:.0f} MiB")
        print(f"(+{new_events:,} events per incremental run; {writer.commits} lake commits in all)")
    return results


def report(events: int, results: dict[str, dict[str, list[Build]]]) -> None:
    print(f"\n{events:,} lake events: medians of {len(next(iter(results.values()))['full'])} rounds, dbt in-process "
          "build s (as a command)\n")
    print("| contender | full build s | incremental s (+1%) | nothing new s |")
    print("|---|---|---|---|")
    for kind, steps in results.items():
        cells = [f"{statistics.median(b.build_s for b in steps[s]):.1f} "
                 f"({statistics.median(b.command_s for b in steps[s]):.1f})" for s in STEPS]
        print(f"| {kind} | {' | '.join(cells)} |")
    if {"file", "ducklake"} <= results.keys():
        for step in STEPS:
            ratios = [d.build_s / f.build_s for d, f in zip(results["ducklake"][step], results["file"][step],
                                                               strict=True)]
            print(f"ducklake / file, {step}: per round {', '.join(f'{r:.2f}' for r in ratios)}; "
                  f"median {statistics.median(ratios):.2f}x (move if <= 1.5x)")


def main() -> None:
    run_as_minio_root()  # the benchmark's own buckets (bench/scratch_lake.py)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", default="1000000", help="lake sizes, comma-separated (e.g. 1000000,10000000)")
    parser.add_argument("--rounds", type=int, default=3, help="full + incremental cycles, each on fresh warehouses")
    parser.add_argument("--contenders", default="file,ducklake")
    args = parser.parse_args()
    settings = Settings.from_env()
    started = time.perf_counter()
    rows = templates(settings)
    print(f"templates of {len(rows)} tables drained from the shop's topics in {time.perf_counter() - started:.1f} s")
    for events in (int(value) for value in args.events.split(",")):
        report(events, bench(settings, rows, events, args.rounds, args.contenders.split(",")))


if __name__ == "__main__":
    main()
