"""``make demo``: the whole pipeline once on the native stack, then a summary a person wants to read.

  python -m tidewater_dev.demo            seed (first time), traffic, drain, warehouse + gate + publish, summary
  python -m tidewater_dev.demo summary    the summary only
  python -m tidewater_dev.demo break      make one order item bad in the shop (the gate will stop it)
  python -m tidewater_dev.demo repair     put it right again

`make demo` starts the stack and Airflow first; each step prints what it does and how long it took, and
the DAG runs' logs go to .stack/logs/demo-<dag>.log. Running it again adds more traffic and runs again.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import psycopg

from tidewater.cdc import connector, topics
from tidewater.config import REPO_ROOT, Settings
from tidewater.drain.summary import lake_summary
from tidewater.gate import docs, publish
from tidewater_shop import simulator

TRAFFIC_RATE_PER_S = 10
TRAFFIC_SECONDS = 20
MART_ROWS_SHOWN = 5
STAR_SCHEMA = ("dim_customer", "dim_product", "dim_date", "fct_order_items", "fct_orders")
MARTS = {  # mart → the order its top rows are shown in
    "mart_daily_sales": "sales_date desc",
    "mart_customer_lifetime_value": "lifetime_value_amount desc",
    "mart_product_performance": "net_revenue_amount desc",
}
# The demo's bad row: one order item whose quantity goes negative, after the CHECK that forbids it is
# dropped (as a careless migration might). Debezium captures it, the drain lands it, dbt builds it, and
# the gate's range expectation on fct_order_items.quantity refuses to publish.
QUANTITY_CHECK = "order_items_quantity_check"
GATE_FAILED = "gate failed for publication"


class DemoError(RuntimeError):
    pass


def step(number: int, total: int, title: str, action: Callable[[], str | None]) -> None:
    print(f"[demo {number}/{total}] {title} ...", flush=True)
    started = time.monotonic()
    outcome = action()
    print(f"[demo {number}/{total}] done in {time.monotonic() - started:.0f} s{': ' + outcome if outcome else ''}",
          flush=True)


def seed_once(settings: Settings) -> str:
    with psycopg.connect(settings.shop_conninfo()) as conn:
        customers = conn.execute("SELECT count(*) FROM shop.customers").fetchone()[0]
    if customers:
        return f"the shop already has {customers} customers; not seeding again"
    counts = simulator.seed_shop(settings.shop_conninfo(), seed=42, customers=50, products=20, orders=40)
    return counts.summary()


def traffic(settings: Settings) -> str:
    seed = int(time.time())  # a new run adds new traffic
    counts = simulator.run_traffic(settings.shop_conninfo(), seed=seed, rate=TRAFFIC_RATE_PER_S,
                                   duration=TRAFFIC_SECONDS, progress=sys.stdout)
    return counts.summary()


def dags_test(dag_id: str) -> str:
    """`airflow dags test <dag_id>`, its output in .stack/logs/demo-<dag_id>.log."""
    log = REPO_ROOT / ".stack" / "logs" / f"demo-{dag_id}.log"
    with log.open("w") as output:
        run = subprocess.run([str(Path(sys.executable).with_name("airflow")), "dags", "test", dag_id],
                             stdout=output, stderr=subprocess.STDOUT)
    if run.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        # A gate failure says best what went wrong; otherwise the end of the log.
        gate = next((index for index, line in enumerate(lines) if GATE_FAILED in line), None)
        shown = lines[-40:]
        if gate is not None:
            end = next((index for index in range(gate, len(lines)) if not lines[index].strip()), len(lines))
            shown = lines[gate:end]
        raise DemoError(f"airflow dags test {dag_id} failed (exit {run.returncode}); from {log}:\n" + "\n".join(shown))
    return f"log in {log.relative_to(REPO_ROOT)}"


def _table(con: duckdb.DuckDBPyConnection, query: str) -> list[str]:
    cursor = con.execute(query)
    names = [column[0] for column in cursor.description]
    rows = [[str(value) for value in row] for row in cursor.fetchall()]
    widths = [max(len(text) for text in column) for column in zip(names, *rows, strict=False)]
    return ["    " + "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True))
            for row in [names, *rows]]


def summary(settings: Settings) -> list[str]:
    lines = ["", "=" * 78, "Tidewater: what the pipeline did", "=" * 78, "", "Changes captured by Debezium (Kafka):"]
    for topic in topics.summarize(settings):
        lines.append(f"  {topic.topic:<28} {topic.events:>8} events")
    lines += ["", "The lake (cdc_drain): change tables, snapshots, positions:", *lake_summary(settings)[1:]]
    current = publish.current_publication(settings)
    if current is None:
        lines += ["", "No marts published yet: the warehouse DAG's gate has not passed."]
    else:
        with publish.open_published(settings) as con:
            lines += ["", f"Star schema, published as {current} (the marts catalog, docs/marts.md):"]
            for table in STAR_SCHEMA:
                lines.append(f"  {table:<28} {con.execute(f'select count(*) from {table}').fetchone()[0]:>8} rows")
            for mart, order in MARTS.items():
                lines += ["", f"{mart} (top {MART_ROWS_SHOWN}):",
                          *_table(con, f"select * from {mart} order by {order} limit {MART_ROWS_SHOWN}")]
    gx_index = docs.site_dir(settings, "gx") / "index.html"
    lines += [
        "", "Where to look:",
        f"  Airflow UI      {settings.airflow_url}  (login {_airflow_login()})",
        f"  Data docs       {settings.docs_url}/  (Browse → Data docs; files: {gx_index.parent})",
        f"  MinIO console   {settings.s3_console_url}  (bucket {settings.lake_bucket}: lake/, marts/, docs/)",
        f"  Mail sink       {settings.mail_dir}/*.eml  (every alert email; nothing leaves this machine)",
        "  Published marts python -c 'from tidewater.gate import publish; from tidewater.config import Settings; "
        "publish.open_published(Settings.from_env()).sql(\"show tables\").show()'  (duckdb: docs/marts.md)",
        "", "What to try next:",
        "  make demo                                   more traffic, drain, build, publish again",
        "  Airflow UI → warehouse → Trigger            with params full_refresh or interval_start/interval_end",
        "  .venv/bin/airflow backfill create --dag-id warehouse --from-date 2026-01-05 --to-date 2026-01-07",
        "  make demo-break && make demo                 a bad order item: the gate stops it, marts unchanged",
        "  make demo-repair && make demo                put it right: the next run publishes again",
        "  python -m tidewater.gate.publish list|rollback   (with .stack/env loaded) publications, roll back",
    ]
    return lines


def _airflow_login() -> str:
    import os

    return f"{os.environ.get('TIDEWATER_AIRFLOW_ADMIN_USER', 'admin')} / " \
           f"{os.environ.get('TIDEWATER_AIRFLOW_ADMIN_PASSWORD', 'tidewater')}"


def break_one_item(settings: Settings) -> str:
    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        conn.execute(f"ALTER TABLE shop.order_items DROP CONSTRAINT IF EXISTS {QUANTITY_CHECK}")
        item = conn.execute("UPDATE shop.order_items SET quantity = -quantity WHERE order_item_id = "
                            "(SELECT max(order_item_id) FROM shop.order_items WHERE quantity > 0) "
                            "RETURNING order_item_id, quantity").fetchone()
    if item is None:
        raise DemoError("the shop has no order item to break: run `make demo` first")
    return f"order item {item[0]} now has quantity {item[1]}"


def repair(settings: Settings) -> str:
    with psycopg.connect(settings.shop_conninfo(admin=True), autocommit=True) as conn:
        fixed = conn.execute("UPDATE shop.order_items SET quantity = -quantity WHERE quantity < 0 "
                             "RETURNING order_item_id").fetchall()
        conn.execute(f"ALTER TABLE shop.order_items DROP CONSTRAINT IF EXISTS {QUANTITY_CHECK}")
        conn.execute(f"ALTER TABLE shop.order_items ADD CONSTRAINT {QUANTITY_CHECK} CHECK (quantity > 0)")
    return f"{len(fixed)} order item(s) fixed, CHECK (quantity > 0) restored"


def run(settings: Settings) -> None:
    steps = [
        ("seed the shop", lambda: seed_once(settings)),
        (f"shop traffic for {TRAFFIC_SECONDS} s at {TRAFFIC_RATE_PER_S} operations/s", lambda: traffic(settings)),
        ("wait until Debezium has every change in Kafka", lambda: connector.wait_for_catch_up(settings)),
        ("airflow dags test cdc_drain (Kafka → Parquet on MinIO)", lambda: dags_test("cdc_drain")),
        ("airflow dags test warehouse (dbt via Cosmos → GX gate → publish)", lambda: dags_test("warehouse")),
        ("airflow dags test data_docs (dbt docs and GX data docs)", lambda: dags_test("data_docs")),
    ]
    for number, (title, action) in enumerate(steps, start=1):
        step(number, len(steps), title, action)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tidewater_dev.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "summary", "break", "repair"])
    args = parser.parse_args(argv)
    logging.getLogger("airflow").setLevel(logging.WARNING)  # the summary's S3 client is chatty at INFO
    settings = Settings.from_env()
    try:
        if args.command == "run":
            run(settings)
        if args.command in ("run", "summary"):
            print("\n".join(summary(settings)))
        elif args.command == "break":
            print(f"[demo] {break_one_item(settings)}; the next `make demo` will stop at the gate")
        elif args.command == "repair":
            print(f"[demo] {repair(settings)}")
    except (DemoError, connector.ConnectError) as error:
        print(f"[demo] {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
