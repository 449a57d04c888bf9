"""Processes of the marts publication tests (test helper); the marts are the ones the environment names.

  python marts_driver.py read LOG STOP      as the marts reader, reads every mart in one transaction, again
                                            and again, one JSON line per read to LOG, until the file STOP exists
  python marts_driver.py die-in-publish ID  publishes candidate ID and kills itself with SIGKILL inside the
                                            transaction, after every mart was written
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.marts import read_all_marts
from tidewater.config import Settings
from tidewater.gate import publish


def read(log: Path, stop: Path) -> None:
    settings = Settings.from_env()
    con = publish.open_published(settings)
    with log.open("a") as out:
        while not stop.exists():
            try:
                seen = read_all_marts(con)
            except Exception as exc:  # before the first publication the marts do not exist yet
                if "does not exist" not in str(exc):
                    raise
                time.sleep(0.05)
                continue
            out.write(json.dumps(seen) + "\n")
            out.flush()


def die_in_publish(publication_id: str) -> None:
    settings = Settings.from_env()

    def die(*_args, **_kwargs) -> None:
        print("killed inside the publishing transaction", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    publish._record = die
    publish.publish(settings, publication_id, publish.open_marts(settings))


if __name__ == "__main__":
    if sys.argv[1] == "read":
        read(Path(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "die-in-publish":
        die_in_publish(sys.argv[2])
    else:
        raise SystemExit(__doc__)
