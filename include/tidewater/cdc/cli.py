"""``tidewater-cdc``: register the Debezium connector and report its state.

  tidewater-cdc register   create or update the connector, wait until it runs
  tidewater-cdc status     connector and task states (exit 1 unless running)
  tidewater-cdc config     print the rendered connector config (password masked)
  tidewater-cdc peek       events per CDC topic and the newest change of each
  tidewater-cdc lake       what cdc_drain has landed: rows, files and newest change per table, quarantine
"""

from __future__ import annotations

import argparse
import json
import sys

from tidewater.cdc import connector, topics
from tidewater.config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidewater-cdc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["register", "status", "config", "peek", "lake"])
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
        elif args.command == "lake":
            from tidewater.drain.summary import lake_summary

            for line in lake_summary(settings):
                print(line)
        else:
            config = connector.render_config(settings)
            config["database.password"] = "********"
            print(json.dumps(config, indent=2))
    except (connector.ConnectError, ConfigError) as exc:
        print(f"tidewater-cdc {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
