"""The lake: a DuckLake catalog (metadata in PostgreSQL, data files on S3) of one change table per source table.

Layout and S3 operations: tidewater.lake.objects; attaching the catalog: tidewater.lake.catalog; the commit
protocol's tables and transactions: tidewater.lake.commit; compaction and retention: tidewater.lake.maintenance.

Protocol of one drain of partitions P of topic T (tidewater.drain.drainer runs it; cdc_drain drains each partition
in a task of its own, so drains of T's other partitions run and commit at the same time):

1. Positions. The lake's table ``tidewater.drain_positions`` holds, per partition of T, the next offset to
   drain and T's Kafka topic id. It is the only record of progress: the consumer group's offsets are written
   after each commit for lag tools and never read. A topic the lake has never seen starts at Kafka's low
   watermark. A topic id that differs from the stored one (the topic was deleted and created again; it reuses
   offsets) fails the run until a person accepts the new topic (``accept_recreated_topic``).
2. Slice. Each partition drains [position, min(high watermark, position + budget)). A position below Kafka's
   low watermark (retention removed records never drained) fails the run, naming the gap and the replay
   that accepts it.
3. Files. Records are decoded in bounded chunks into Parquet files under the catalog's data path, named by
   offsets plus a token of the run (two drains never share a file), and undecodable records into quarantine
   JSONL files. None of them is part of the lake yet.
4. Commit. One DuckLake transaction re-reads T's positions and checks those of P are still the ones the drain
   started from, adds the columns new records brought, registers the data files
   (``ducklake_add_data_files``), accepts the quarantine files and moves the positions to the slice's ends.
   If another drain of a partition in P committed first, the check fails (or DuckLake reports a transaction
   conflict and the re-read shows it): the run fails saying so and deletes its data files. Commits of other
   topics and of T's other partitions conflict too (DuckLake detects conflicts per table and every commit
   rewrites T's rows of drain_positions); those are retried, since P's positions are unchanged. A drain killed
   before its commit leaves unregistered files: readers never see them and maintenance deletes them as orphans.
5. Replay goes back only: in one transaction it deletes T's changes and accepted quarantine files from the
   target offsets on and moves the positions back; the warehouse reads the deletions from the change feed.
   It holds the catalog's rewrite lock (tidewater.lake.maintenance.rewrite_lock) meanwhile: DuckLake 1.5.5
   loses a deletion that overlaps a compaction of its table without reporting a conflict.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from tidewater.config import Connection
from tidewater.lake.objects import Bucket


@dataclass
class Lake:
    """A session on the lake: the catalog attached to a DuckDB connection, the bucket its files are in, and the
    catalog database's connection (for the rewrite lock a replay takes)."""

    con: duckdb.DuckDBPyConnection
    bucket: Bucket
    metadata: Connection | None = None
