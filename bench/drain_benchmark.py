"""Drain throughput and memory on the real stack: the DuckLake drain vs the old drain, a common writer, the floor.

  .venv/bin/python bench/drain_benchmark.py [--events 1000000] [--rounds 5] [--contenders old-drain,drain]
  .venv/bin/python bench/drain_benchmark.py --partitions 4 --contenders workers-1,workers-2

1. Produces N real-shaped Debezium events into a fresh topic (--partitions, default 1; keys spread them): real
   envelopes taken from the shop's own CDC topic (schema and payload as Debezium wrote them), with keys, amounts
   and quantities varied.
2. Runs each contender in its own process (so peak RSS is its own), on the same topic, --rounds times,
   interleaved (the order alternates each round, so drift on a shared machine hits every contender alike):
   - drain:     tidewater.drain.drainer.drain_topic (what cdc_drain runs) into a fresh DuckLake lake (a new
                bucket and catalog database): Parquet files, then one DuckLake commit that registers them
                (ducklake_add_data_files) and moves the positions; the group's offsets afterwards;
   - drain-per-file: the same with the commit as first landed (bench/contenders/per_file_commit.py: one
                ducklake_add_data_files call per file instead of one for all);
   - old-drain: the drain before DuckLake (git 149b7c5, bench/contenders/old_drain.py): Parquet files under
                raw/, an S3 journal, the consumer group's offsets as the commit;
   - baseline:  the common CDC writer: poll one message at a time, json.loads, rows into a pandas
                DataFrame, to_parquet (snappy), upload, commit, per 100k-record batch;
   - floor:     a consume(num_messages=…) loop that only reads, with librdkafka's defaults;
   - floor-tuned: the same loop with the drain's consumer tuning (drain.FETCH_TUNING): what reading costs;
   - drain-backlog: the DuckLake drain with cdc_drain's limits (drain.limits: max_records_per_run bounds a
                run), run again and again in one process until the topic is drained: a backlog's peak RSS;
   - workers-1, workers-2: cdc_drain's mapped tasks (one per partition: --partitions 4) on one worker or two,
                each worker a process of its own running one task at a time (a Celery worker of concurrency 1),
                partitions dealt round-robin, into one fresh lake; timed from a common start signal to the
                last worker's end (their start-up is not timed); peak RSS is the largest worker's.
   Creating and removing a contender's bucket, catalog database and consumer is not timed.
3. Prints each run, then per contender the median events/s, MB/s (of record values) and peak RSS, and the
   median of the per-round ratios drain / old-drain (each round's two runs were next to each other).
Needs `make stack-up` and `set -a; . .stack/env; set +a`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from io import BytesIO
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from contenders import old_drain, per_file_commit  # bench/ is on sys.path when this script runs
from scratch_lake import empty_bucket, open_scratch_lake, run_as_minio_root, s3_client, scratch_lake

from tidewater import drain
from tidewater.cdc.access import admin_config
from tidewater.cdc.connector import table_topic
from tidewater.cdc.topics import consumer_config
from tidewater.config import Settings
from tidewater.drain import drainer

BUCKET_PREFIX = "bench-drain-"




def _templates(settings: Settings, table: str, limit: int = 500) -> list[tuple[dict, dict]]:
    """(schema, payload) of real Debezium create/update events from the shop's topic."""
    topic = table_topic(settings, table)
    consumer = Consumer(consumer_config(settings, **{"group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False}))
    low, _ = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, low)])
    found = []
    while len(found) < limit:
        messages = consumer.consume(1000, timeout=5)
        if not messages:
            break
        for message in messages:
            if message.error() is None and message.value():
                envelope = json.loads(message.value())
                if envelope["payload"]["op"] in ("c", "u", "r"):
                    found.append((envelope["schema"], envelope["payload"]))
    consumer.close()
    if not found:
        raise SystemExit(f"{topic} holds no change events: run the simulator first (make demo)")
    return found


def produce(settings: Settings, table: str, events: int, partitions: int = 1) -> tuple[str, int]:
    templates = _templates(settings, table)
    topic = f"bench{uuid.uuid4().hex[:8]}.shop.{table}"
    admin = AdminClient(admin_config(os.environ))
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result()
    producer = Producer({**admin_config(os.environ), "linger.ms": 50, "batch.size": 1_000_000,
                         "queue.buffering.max.kbytes": 1_000_000})  # uncompressed, like Connect's default
    rng = random.Random(1)
    prefixes = [json.dumps({"schema": schema}, separators=(",", ":"))[:-1] + ',"payload":' for schema, _ in templates]
    total_bytes = 0
    for index in range(events):
        which = index % len(templates)
        payload = templates[which][1]
        after = dict(payload["after"])
        for key in after:
            if key.endswith("_id") and isinstance(after[key], int):
                after[key] = after[key] + index
        if "quantity" in after:
            after["quantity"] = rng.randint(1, 9)
        event = {**payload, "after": after, "source": {**payload["source"], "lsn": 10_000_000 + index * 64}}
        value = (prefixes[which] + json.dumps(event, separators=(",", ":")) + "}").encode()
        total_bytes += len(value)
        while True:
            try:
                producer.produce(topic, value=value, key=str(index).encode())
                break
            except BufferError:
                producer.poll(0.1)
        if index % 10_000 == 0:
            producer.poll(0)
    producer.flush(120)
    return topic, total_bytes


# -- contenders (each runs in its own process) -----------------------------------------------------

def _timed_commit() -> dict[str, float]:
    """Wraps the lake's commit steps so the drain's result says how long each took (seconds, summed over runs)."""
    from tidewater.lake import commit

    spent = {"commit_s": 0.0}

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                took = time.perf_counter() - started
                spent[f"{name}_s"] = spent.get(f"{name}_s", 0.0) + took
                if name in ("commit_drain", "start_topic", "ensure_tables"):  # read_positions runs inside these
                    spent["commit_s"] += took
        return wrapper

    for name in ("commit_drain", "start_topic", "ensure_tables", "_ensure_columns"):
        setattr(commit, name, timed(name, getattr(commit, name)))
    return spent


def run_drain(settings: Settings, topic: str, client, limits: drainer.DrainLimits | None = None) -> dict:
    spent = _timed_commit()
    with scratch_lake(settings, "bench_drain") as scratch:
        consumer = drain.kafka_consumer(settings, group_id=f"bench-drain-{uuid.uuid4().hex[:6]}")
        topic_id = drain.kafka_topic_id(settings, topic)
        started = time.perf_counter()
        rows, runs, files = 0, 0, 0
        while True:
            result = drainer.drain_topic(consumer, scratch.lake, topic, topic_id,
                                         limits or drainer.DrainLimits(max_records_per_run=100_000_000))
            rows, runs, files = rows + result.rows, runs + 1, files + result.files
            if limits is None or result.remaining_lag <= 0:
                break
        seconds = time.perf_counter() - started
        consumer.close()
    return {"events": rows, "seconds": seconds, "runs": runs, "files": files, **spent}


def run_drain_per_file(settings: Settings, topic: str, client) -> dict:
    from tidewater.lake import commit

    commit.commit_drain = per_file_commit.commit_drain  # before _timed_commit wraps it
    return run_drain(settings, topic, client)


def run_drain_backlog(settings: Settings, topic: str, client) -> dict:
    return run_drain(settings, topic, client, drain.limits(settings))


def run_old_drain(settings: Settings, topic: str, client) -> dict:
    bucket = f"{BUCKET_PREFIX}{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    try:
        consumer = drain.kafka_consumer(settings, group_id=f"bench-old-{uuid.uuid4().hex[:6]}")
        started = time.perf_counter()
        result = old_drain.drain_topic(consumer, old_drain.Lake(client, bucket), topic,
                                       drainer.DrainLimits(max_records_per_run=100_000_000))
        seconds = time.perf_counter() - started
        consumer.close()
    finally:
        empty_bucket(client, bucket)
    return {"events": result.rows, "seconds": seconds, "runs": 1, "files": result.files}


def run_baseline(settings: Settings, topic: str, client) -> dict:
    import pandas as pd

    bucket = f"{BUCKET_PREFIX}{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    started = time.perf_counter()
    consumer = Consumer(consumer_config(settings, **{"group.id": f"bench-base-{uuid.uuid4().hex[:6]}",
                                                     "enable.auto.commit": False}))
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    rows, landed, last = [], 0, -1

    def flush() -> None:
        nonlocal rows, landed
        frame = pd.DataFrame(rows)
        buffer = BytesIO()
        frame.to_parquet(buffer, compression="snappy", index=False)
        client.put_object(Bucket=bucket, Key=f"raw/{topic}/{last}.parquet", Body=buffer.getvalue())
        consumer.commit(offsets=[TopicPartition(topic, 0, last + 1)], asynchronous=False)
        landed += len(rows)
        rows = []

    while last < high - 1:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        last = message.offset()
        if message.value() is None:
            continue
        payload = json.loads(message.value())["payload"]
        image = payload["after"] if payload["op"] != "d" else payload["before"]
        rows.append({**image, "_op": payload["op"], "_lsn": payload["source"]["lsn"], "_kafka_offset": last})
        if len(rows) >= 100_000:
            flush()
    if rows:
        flush()
    seconds = time.perf_counter() - started
    consumer.close()
    empty_bucket(client, bucket)
    return {"events": landed, "seconds": seconds}


def run_floor(settings: Settings, topic: str, client, **tuning) -> dict:
    consumer = Consumer(consumer_config(settings, **{"group.id": f"bench-floor-{uuid.uuid4().hex[:6]}",
                                                     "enable.auto.commit": False}, **tuning))
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    started = time.perf_counter()
    seen, last = 0, -1
    while last < high - 1:
        for message in consumer.consume(num_messages=5000, timeout=1.0):
            if message.error() is None:
                last = message.offset()
                seen += message.value() is not None
    seconds = time.perf_counter() - started
    consumer.close()
    return {"events": seen, "seconds": seconds}


def run_floor_tuned(settings: Settings, topic: str, client) -> dict:
    return run_floor(settings, topic, client, **drain.FETCH_TUNING)


def run_workers(settings: Settings, topic: str, client, workers: int) -> dict:
    consumer = drain.kafka_consumer(settings)
    partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
    consumer.close()
    with scratch_lake(settings, "bench_workers") as scratch, tempfile.TemporaryDirectory() as folder:
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", ",".join(map(str, partitions[n::workers])),
                                   "--topic", topic, "--lake", scratch.name, "--signals", folder],
                                  stdout=subprocess.PIPE, text=True) for n in range(workers)]
        while len(list(Path(folder).iterdir())) < workers:  # each worker's "ready"
            if any(proc.poll() not in (None, 0) for proc in procs):
                raise SystemExit(f"a worker of {workers} failed before starting")
            time.sleep(0.05)
        go = time.time()
        Path(folder, "go").touch()
        outcomes = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    return {"events": sum(o["events"] for o in outcomes), "seconds": max(o["end"] for o in outcomes) - go,
            "runs": len(partitions), "files": sum(o["files"] for o in outcomes),
            "peak_rss_mib": max(o["peak_rss_mib"] for o in outcomes)}


def worker_main(partitions: list[int], topic: str, lake_name: str, signals: str) -> None:
    """One worker of run_workers: says it is ready, waits for the start signal, then drains its partitions one task
    (one partition, a consumer of its own, one lake commit) at a time, as cdc_drain's mapped tasks do."""
    settings = Settings.from_env()
    lake = open_scratch_lake(settings, s3_client(settings), lake_name).lake
    topic_id = drain.kafka_topic_id(settings, topic)
    Path(signals, f"ready-{os.getpid()}").touch()
    while not Path(signals, "go").exists():
        time.sleep(0.01)
    events = files = 0
    for partition in partitions:
        consumer = drain.kafka_consumer(settings)
        result = drainer.drain_topic(consumer, lake, topic, topic_id,
                                     drainer.DrainLimits(max_records_per_run=100_000_000), partitions=[partition])
        consumer.close()
        events, files = events + result.rows, files + result.files
    print(json.dumps({"events": events, "files": files, "end": time.time(),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _remove(settings: Settings, topic: str) -> None:
    """Deletes the benchmark's topic (each contender removed its own bucket and catalog)."""
    admin = AdminClient(admin_config(os.environ))
    admin.delete_topics([topic])[topic].result()


CONTENDERS = {"drain": run_drain, "old-drain": run_old_drain, "drain-per-file": run_drain_per_file,
              "drain-backlog": run_drain_backlog,
              "baseline": run_baseline, "floor": run_floor, "floor-tuned": run_floor_tuned,
              "workers-1": functools.partial(run_workers, workers=1),
              "workers-2": functools.partial(run_workers, workers=2)}


def contender_main(name: str, topic: str) -> None:
    settings = Settings.from_env()
    client = s3_client(settings)  # setup (imports, S3 client) is not what is measured
    result = CONTENDERS[name](settings, topic, client)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"contender": name, "peak_rss_mib": peak_kib / 1024, **result}))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_contender(name: str, topic: str) -> dict:
    run = subprocess.run([sys.executable, __file__, "--contender", name, "--topic", topic],
                         capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise SystemExit(f"{name} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def main() -> None:
    run_as_minio_root()  # the benchmark's own buckets (bench/scratch_lake.py)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--table", default="order_items", choices=["order_items", "orders"])
    parser.add_argument("--topic", help="reuse a topic produced earlier instead of producing")
    parser.add_argument("--value-bytes", type=int, default=0, help="with --topic: its total value bytes")
    parser.add_argument("--contenders", default="old-drain,drain")
    parser.add_argument("--rounds", type=int, default=5, help="runs of every contender, interleaved")
    parser.add_argument("--keep", action="store_true", help="keep the produced topic (default: deleted)")
    parser.add_argument("--partitions", type=int, default=1,
                        help="partitions of the produced topic (baseline and floor read partition 0 only)")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--signals", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main([int(p) for p in args.worker.split(",")], args.topic, args.lake, args.signals)
        return
    if args.contender:
        contender_main(args.contender, args.topic)
        return
    settings = Settings.from_env()
    if args.topic:
        topic, value_bytes = args.topic, args.value_bytes
    else:
        started = time.perf_counter()
        topic, value_bytes = produce(settings, args.table, args.events, args.partitions)
        print(f"produced {args.events:,} events ({value_bytes / 1e6:,.0f} MB of values) into {topic} "
              f"in {time.perf_counter() - started:.0f}s", flush=True)
    names = args.contenders.split(",")
    results: dict[str, list[dict]] = {name: [] for name in names}
    try:
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else list(reversed(names)):
                result = run_contender(name, topic)
                results[name].append(result)
                extra = "".join(f", {key[:-2]} {value:.2f}s" for key, value in result.items()
                                if key.endswith("_s") and key != "seconds")
                print(f"[round {round_ + 1}] {name}: {result['events']:,} events in {result['seconds']:.2f}s "
                      f"({result['events'] / result['seconds']:,.0f}/s, {result.get('runs', 1)} runs, "
                      f"{result.get('files', 0)} files{extra}), peak RSS {result['peak_rss_mib']:.0f} MiB, "
                      f"{_load()}", flush=True)
    finally:
        if not args.keep and not args.topic:
            _remove(settings, topic)
    print(f"\nmedians of {args.rounds} interleaved rounds ({args.events:,} events)\n")
    print("| contender | events | seconds (min-max) | events/s | MB/s | commit s | peak RSS MiB (min-max) |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        events = runs[0]["events"]
        median_s = _median(seconds)
        mb = value_bytes / 1e6 * events / max(args.events, 1) if value_bytes else float("nan")
        rss = [r["peak_rss_mib"] for r in runs]
        commit_s = f"{_median([r['commit_s'] for r in runs]):.2f}" if "commit_s" in runs[0] else "-"
        print(f"| {name} | {events:,} | {median_s:.2f} ({min(seconds):.2f}-{max(seconds):.2f}) "
              f"| {events / median_s:,.0f} | {mb / median_s:,.1f} | {commit_s} "
              f"| {_median(rss):.0f} ({min(rss):.0f}-{max(rss):.0f}) |")
    if {"drain", "old-drain"} <= results.keys():
        ratios = [(r["events"] / r["seconds"]) / (o["events"] / o["seconds"])
                  for r, o in zip(results["drain"], results["old-drain"], strict=True)]
        print(f"\ndrain / old-drain throughput, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
              f"median {_median(ratios):.2f} (target >= 0.90)")
    if {"workers-1", "workers-2"} <= results.keys():
        ratios = [(two["events"] / two["seconds"]) / (one["events"] / one["seconds"])
                  for one, two in zip(results["workers-1"], results["workers-2"], strict=True)]
        print(f"\ntwo workers / one worker throughput, per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
              f"median {_median(ratios):.2f}")
    if {"drain", "baseline"} <= results.keys():
        baseline_s = _median([r["seconds"] for r in results["baseline"]])
        print(f"drain / baseline (medians) = {baseline_s / _median([r['seconds'] for r in results['drain']]):.2f}x")


if __name__ == "__main__":
    main()
