"""``tidewater shop``: migrate, seed, reset and drive the shop database.

  tidewater shop migrate
  tidewater shop seed [--customers N] [--products N] [--orders N] [--csv-dir DIR | --no-csv] [--seed S]
  tidewater shop run --rate OPS_PER_S --duration SECONDS [--seed S] [--json]
  tidewater shop reset
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tidewater.config import ConfigError, Settings
from tidewater_shop import migrate, simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidewater shop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply new SQL migrations (as the database owner)")
    seed = commands.add_parser("seed", help="initial load: CSV files, then generated rows")
    seed.add_argument("--customers", type=int, default=50)
    seed.add_argument("--products", type=int, default=20)
    seed.add_argument("--orders", type=int, default=40)
    seed.add_argument("--csv-dir", type=Path, default=simulator.SEED_DATA_DIR,
                      help="folder with products.csv and customers.csv (default: the packaged sample)")
    seed.add_argument("--no-csv", action="store_true", help="load no CSV files")
    seed.add_argument("--seed", type=int, default=42)
    run = commands.add_parser("run", help="continuous business traffic")
    run.add_argument("--rate", type=float, default=5.0, help="operations per second")
    run.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--json", action="store_true", help="print the final counts as JSON")
    commands.add_parser("reset", help="empty every shop table (as the database owner)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "migrate":
            applied = migrate.apply(settings.shop_conninfo(admin=True), settings.migration_settings())
            names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied) or "nothing new"
            print(f"[shop] migrations applied: {names}")
        elif args.command == "seed":
            counts = simulator.seed_shop(
                settings.shop_conninfo(), seed=args.seed, customers=args.customers,
                products=args.products, orders=args.orders,
                csv_dir=None if args.no_csv else args.csv_dir,
            )
            print(f"[shop] seeded: {counts.summary()}")
        elif args.command == "run":
            counts = simulator.run_traffic(settings.shop_conninfo(), seed=args.seed, rate=args.rate,
                                           duration=args.duration, progress=sys.stderr)
            print(json.dumps(counts.as_dict()) if args.json else f"[shop] done: {counts.summary()}")
        elif args.command == "reset":
            simulator.reset_shop(settings.shop_conninfo(admin=True))
            print("[shop] every shop table emptied")
    except (ConfigError, migrate.MigrationError, FileNotFoundError, ValueError) as exc:
        print(f"tidewater shop {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
