"""Runs one drain in this process and kills it with SIGKILL at a chosen point (test helper).

  python drain_crash_driver.py TOPIC GROUP MODE FILE_MAX_ROWS [PARTITIONS]

The lake is the one the environment names (TIDEWATER_LAKE_BUCKET, AIRFLOW_CONN_LAKE_CATALOG: a test's lake).
MODE: after_first_upload | mid_file (during the upload of the second file) | before_commit (after the
last upload) | in_commit (inside the lake's transaction, after the files were registered) | none |
barrier:<dir>:<n> (before committing, wait until n drivers reached that point: concurrent commits for sure).
PARTITIONS: the partitions to drain, comma-separated (default: all).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from tidewater import drain
from tidewater.config import Settings
from tidewater.drain import drainer
from tidewater.lake import commit


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DyingBody:
    """A request body that kills the process once half of it has been sent."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, size: int = -1) -> bytes:
        if self.position >= len(self.data) // 2:
            die()
        size = len(self.data) // 2 if size < 0 else min(size, len(self.data) // 2 - self.position)
        chunk = self.data[self.position:self.position + size]
        self.position += len(chunk)
        return chunk

    def seek(self, position: int, whence: int = 0) -> int:
        self.position = position if whence == 0 else len(self.data) if whence == 2 else self.position + position
        return self.position

    def tell(self) -> int:
        return self.position


def main(topic: str, group: str, mode: str, file_max_rows: str, partitions: str = "") -> None:
    settings = Settings.from_env()
    lake = drain.open_lake(settings)
    bucket = lake.bucket
    uploads = 0
    put_parquet = bucket.put_parquet

    def counting_put_parquet(key, body):
        nonlocal uploads
        uploads += 1
        if mode == "mid_file" and uploads == 2:
            bucket.client.put_object(Bucket=bucket.bucket, Key=key, Body=DyingBody(body))
        written = put_parquet(key, body)
        if mode == "after_first_upload" and uploads == 1:
            die()
        return written

    bucket.put_parquet = counting_put_parquet
    if mode == "before_commit":
        commit.commit_drain = lambda *args, **kwargs: die()
    if mode == "in_commit":
        commit_drain = commit.commit_drain

        def dying_commit(*args, **kwargs):
            commit._set_positions = lambda *_args, **_kwargs: die()
            return commit_drain(*args, **kwargs)

        commit.commit_drain = dying_commit
    if mode.startswith("barrier:"):
        _, folder, count = mode.split(":")
        commit_drain = commit.commit_drain

        def commit_together(*args, **kwargs):
            Path(folder, str(os.getpid())).touch()
            deadline = time.monotonic() + 120
            while len(list(Path(folder).iterdir())) < int(count) and time.monotonic() < deadline:
                time.sleep(0.05)
            return commit_drain(*args, **kwargs)

        commit.commit_drain = commit_together
    consumer = drain.kafka_consumer(settings, group_id=group)
    drainer.drain_topic(consumer, lake, topic, drain.kafka_topic_id(settings, topic),
                        drainer.DrainLimits(file_max_rows=int(file_max_rows)),
                        partitions=[int(p) for p in partitions.split(",")] if partitions else None)
    consumer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
