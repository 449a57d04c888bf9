"""``tidewater cdc``: register the Debezium connector and report its state.

  tidewater cdc register   create or update the connector, wait until it runs
  tidewater cdc status     connector and task states (exit 1 unless running)
  tidewater cdc config     print the rendered connector config (password masked)
  tidewater cdc peek       events per CDC topic and the newest change of each
  tidewater cdc lake       the lake: rows, files, ops and newest change per change table; the latest snapshots;
                           positions against Kafka's high watermarks (lag); accepted and unreported quarantine
  tidewater cdc kafka-access
                           as Kafka's admin: every client's SCRAM user and ACLs (tidewater.cdc.access; safe to repeat)
  tidewater cdc reconcile  compare PostgreSQL with the warehouse as of one snapshot, once the pipeline holds it
                           (exit 1 if a table differs; docs/reconcile.md)
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tidewater.cdc import access, connector, topics
from tidewater.config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidewater cdc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["register", "status", "config", "peek", "lake", "reconcile",
                                                "kafka-access"])
    parser.add_argument("--timeout-minutes", type=float, default=None,
                        help="reconcile: how long to wait for the drain and the warehouse "
                             "(default TIDEWATER_RECONCILE_TIMEOUT_MINUTES)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.command == "register":
            connector.register(settings)
            state = connector.wait_until_running(settings)
            print(f"[cdc] {settings.cdc_connector}: connector {state.connector_state}, "
                  f"tasks {', '.join(state.task_states)}")
        elif args.command == "status":
            state = connector.status(settings)
            print(f"[cdc] {settings.cdc_connector}: connector {state.connector_state}, "
                  f"tasks {', '.join(state.task_states) or 'none'}")
            if state.trace:
                print(state.trace[:2000], file=sys.stderr)
            return 0 if state.is_running else 1
        elif args.command == "peek":
            for summary in topics.summarize(settings):
                print(f"[cdc] {summary.topic}: {summary.events} events")
                if summary.newest:
                    newest = summary.newest
                    image = newest.get("after") or newest.get("before")
                    print(f"      newest: op={newest.get('op')} lsn={newest.get('source', {}).get('lsn')} "
                          f"row={json.dumps(image, ensure_ascii=False)[:160]}")
        elif args.command == "reconcile":
            return _reconcile(settings, args.timeout_minutes)
        elif args.command == "kafka-access":
            users = access.apply(os.environ)
            print(f"[cdc] Kafka users and ACLs set: {', '.join(users)}")
        elif args.command == "lake":
            from tidewater.drain.summary import lake_summary

            for line in lake_summary(settings):
                print(line)
        else:
            config = connector.render_config(settings)
            config["database.password"] = "********"
            print(json.dumps(config, indent=2))
    except (connector.ConnectError, ConfigError, TimeoutError, access.AccessError) as exc:
        print(f"tidewater cdc {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


def _reconcile(settings: Settings, timeout_minutes: float | None) -> int:
    from tidewater.alerts import notify
    from tidewater.reconcile import run

    print(f"[reconcile] waiting until the drain and the warehouse {settings.warehouse_path} hold a new snapshot "
          "of the shop ...", flush=True)
    report = run.reconcile(settings, timeout_s=None if timeout_minutes is None else timeout_minutes * 60,
                           send=lambda email: notify.send(settings, email))
    for table in report["tables"]:
        detail = table["error"] or (f"{table['source_rows']} rows in PostgreSQL, {table['warehouse_rows']} in the "
                                    f"warehouse; {table['missing']} missing, {table['extra']} extra, "
                                    f"{table['differing']} differing {table['examples'] or ''}")
        print(f"[reconcile] {table['table']}: {table['status']}: {detail}")
    print(f"[reconcile] {report['status']} at LSN {report['lsn']} (lake snapshot {report['lake_snapshot']}); "
          f"recorded in s3://{settings.lake_bucket}/{run.LATEST_KEY}")
    return 0 if report["status"] == "equal" else 1


if __name__ == "__main__":
    sys.exit(main())
