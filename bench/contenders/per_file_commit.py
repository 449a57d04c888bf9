"""The DuckLake drain's commit as first landed (e2e8be1): one ducklake_add_data_files call per file.

A benchmark contender, not product code: bench/drain_benchmark.py's `drain-per-file` runs today's drain with
this commit in place of tidewater.lake.commit.commit_drain, to measure the one-call-for-all-files change side by
side with it.
"""

from __future__ import annotations

import duckdb

from tidewater.lake import commit
from tidewater.lake.catalog import LAKE
from tidewater.sqltext import literal


def commit_drain(con: duckdb.DuckDBPyConnection, table: str, started: commit.Positions, ends: dict[int, int],
                 files: list[commit.DataFile], quarantine: list[commit.QuarantineFile]) -> int:
    def work(current: commit.Positions) -> None:
        if files:
            commit._ensure_columns(con, table, files)
        for file in files:
            con.execute(f"CALL ducklake_add_data_files({literal(LAKE)}, ?, ?, schema => 'main', "
                        "allow_missing => true)", [table, file.uri])
        if quarantine:
            con.executemany(f"INSERT INTO {commit.QUARANTINE_FILES} VALUES (?, ?, ?, ?, ?, ?, now())",
                            [[q.key, started.topic, q.partition, q.first_offset, q.last_offset, q.records]
                             for q in quarantine])
        commit._set_positions(con, current, ends)

    return commit._transaction(con, started.topic, started, work)
