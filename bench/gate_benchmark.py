"""What the gate costs next to the dbt build it guards (docs/benchmarks.md, "Gate").

Builds the warehouse from a lake bucket into a temporary DuckDB file with `dbt build` (timed), then runs
the gate's steps as the warehouse DAG does, each phase timed: importing GX (a new task process pays it),
staging the candidate, reading the batches into pandas, the checkpoints, rendering their data docs (the
data_docs DAG, off the critical path) and publishing (to a fresh bucket, removed afterwards).

    .venv/bin/python bench/gate_benchmark.py [--bucket tidewater-lake] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import duckdb
from scratch_lake import run_as_minio_root  # bench/ is on sys.path when this script runs

from tidewater.config import REPO_ROOT, Settings


def timed(results: dict[str, list[float]], name: str, action, *args):
    start = time.perf_counter()
    value = action(*args)
    results.setdefault(name, []).append(time.perf_counter() - start)
    return value


def dbt_build(settings: Settings, bucket: str, warehouse: Path) -> None:
    env = {**os.environ, "TIDEWATER_LAKE_BUCKET": bucket, "TIDEWATER_WAREHOUSE_PATH": str(warehouse),
           "DBT_PROFILES_DIR": settings.dbt_project_dir}
    run = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "dbt"), "build", "--project-dir", settings.dbt_project_dir,
                          "--quiet"], env=env, cwd=settings.dbt_project_dir, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"dbt build failed:\n{run.stdout[-3000:]}")


def main() -> None:
    run_as_minio_root()  # the benchmark's own buckets (bench/scratch_lake.py)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bucket", default=None, help="lake bucket to build from (default: the settings')")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Settings.from_env()
    bucket = args.bucket or base.lake_bucket
    from tidewater import drain
    from tidewater.gate import context, publish, stage
    from tidewater.lake import Lake
    from tidewater.lake.objects import Bucket

    results: dict[str, list[float]] = {}
    client = drain.open_lake(base).bucket.client
    publish_bucket = f"bench-gate-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=publish_bucket)
    lake = Lake(publish.open_marts(base).con, Bucket(client, publish_bucket))
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as root:
        root = Path(root)
        gx_dir = root / "gx"
        shutil.copytree(REPO_ROOT / "great_expectations", gx_dir, ignore=shutil.ignore_patterns("uncommitted"))
        settings = replace(base, warehouse_path=str(root / "warehouse.duckdb"), gx_context_dir=str(gx_dir),
                           marts_dir=str(root / "marts"), lake_bucket=publish_bucket)
        timed(results, "import great_expectations", __import__, "great_expectations")
        try:
            for _ in range(args.runs):
                Path(settings.warehouse_path).unlink(missing_ok=True)
                timed(results, "dbt build (whole project)", dbt_build, settings, bucket, Path(settings.warehouse_path))
                publication_id = stage.new_publication_id()
                candidate = timed(results, "stage candidate", stage.stage_candidate, settings, publication_id)
                timed(results, "read batches into pandas", context.read_batches, settings, candidate)
                report = timed(results, "checkpoints", context.validate, settings, publication_id, candidate)
                assert report.success, report.failure_message()
                timed(results, "render data docs (data_docs DAG)", context.update_data_docs, settings)
                timed(results, "publish", publish.publish, settings, publication_id, lake)
            with duckdb.connect(settings.warehouse_path, read_only=True) as con:
                sizes = {table: con.execute(f"select count(*) from {table}").fetchone()[0]
                         for table in ("fct_order_items", "fct_orders", "dim_customer", "dim_product")}
        finally:
            lake.delete(lake.keys(""))
            client.delete_bucket(Bucket=publish_bucket)
    print(f"rows: {sizes}")
    print("| phase | median s | runs |\n|---|---|---|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    build = statistics.median(results["dbt build (whole project)"])
    # context.validate reads the batches itself: "read batches" is shown apart, not added.
    critical = sum(statistics.median(results[name]) for name in ("stage candidate", "checkpoints"))
    print(f"gate on the critical path (stage + checkpoints): {critical:.2f} s = "
          f"{100 * critical / build:.1f}% of the dbt build ({build:.2f} s)")


if __name__ == "__main__":
    main()
