"""Drain throughput and memory on the real stack: Tidewater's drain vs a common CDC writer vs the floor.

  .venv/bin/python bench/drain_benchmark.py [--events 1000000] [--table order_items]

1. Produces N real-shaped Debezium events into a fresh topic: real envelopes taken from the shop's
   own CDC topic (schema and payload as Debezium wrote them), with keys, amounts and quantities varied.
2. Runs each contender in its own process (so peak RSS is its own), on the same topic:
   - drain:    tidewater.drain.drainer.drain_topic into a fresh bucket (what cdc_drain runs);
   - baseline: the common CDC writer: poll one message at a time, json.loads, rows into a pandas
               DataFrame, to_parquet (snappy), upload, commit, per 100k-record batch;
   - floor:    a consume(num_messages=…) loop that only reads, with librdkafka's defaults;
   - floor-tuned: the same loop with the drain's consumer tuning (drain.FETCH_TUNING): what reading costs.
3. Prints events/s, MB/s (of record values) and peak RSS for each, as a Markdown table.
Needs `make stack-up` and `set -a; . .stack/env; set +a`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from io import BytesIO

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tidewater import drain
from tidewater.cdc.connector import table_topic
from tidewater.cdc.topics import consumer_config
from tidewater.config import Settings
from tidewater.drain import drainer
from tidewater.drain.lake import Lake

BUCKET_PREFIX = "bench-"


def _bootstrap(settings: Settings) -> str:
    return consumer_config(settings)["bootstrap.servers"]


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


def produce(settings: Settings, table: str, events: int) -> tuple[str, int]:
    templates = _templates(settings, table)
    topic = f"bench{uuid.uuid4().hex[:8]}.shop.{table}"
    admin = AdminClient({"bootstrap.servers": _bootstrap(settings)})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result()
    producer = Producer({"bootstrap.servers": _bootstrap(settings), "linger.ms": 50, "batch.size": 1_000_000,
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

def run_drain(settings: Settings, topic: str, client) -> int:
    bucket = f"{BUCKET_PREFIX}{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    consumer = drain.kafka_consumer(settings, group_id=f"bench-drain-{uuid.uuid4().hex[:6]}")
    result = drainer.drain_topic(consumer, Lake(client, bucket), topic,
                                 drainer.DrainLimits(max_records_per_run=100_000_000))
    consumer.close()
    return result.rows


def run_baseline(settings: Settings, topic: str, client) -> int:
    import pandas as pd

    bucket = f"{BUCKET_PREFIX}{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
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
    consumer.close()
    return landed


def run_floor(settings: Settings, topic: str, client, **tuning) -> int:
    consumer = Consumer(consumer_config(settings, **{"group.id": f"bench-floor-{uuid.uuid4().hex[:6]}",
                                                     "enable.auto.commit": False}, **tuning))
    _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen, last = 0, -1
    while last < high - 1:
        for message in consumer.consume(num_messages=5000, timeout=1.0):
            if message.error() is None:
                last = message.offset()
                seen += message.value() is not None
    consumer.close()
    return seen


def run_floor_tuned(settings: Settings, topic: str, client) -> int:
    return run_floor(settings, topic, client, **drain.FETCH_TUNING)


def _remove(settings: Settings, topic: str) -> None:
    """Deletes the benchmark's topic and the buckets its contenders wrote."""
    admin = AdminClient({"bootstrap.servers": _bootstrap(settings)})
    admin.delete_topics([topic])[topic].result()
    lake = drain.open_lake(settings)
    for bucket in lake.client.list_buckets()["Buckets"]:
        if bucket["Name"].startswith(BUCKET_PREFIX):
            target = Lake(lake.client, bucket["Name"])
            target.delete(target.keys(""))
            lake.client.delete_bucket(Bucket=bucket["Name"])


CONTENDERS = {"drain": run_drain, "baseline": run_baseline, "floor": run_floor, "floor-tuned": run_floor_tuned}


def contender_main(name: str, topic: str) -> None:
    settings = Settings.from_env()
    client = drain.open_lake(settings).client  # setup (imports, S3 client) is not what is measured
    started = time.perf_counter()
    events = CONTENDERS[name](settings, topic, client)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"contender": name, "events": events, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--table", default="order_items", choices=["order_items", "orders"])
    parser.add_argument("--topic", help="reuse a topic produced earlier instead of producing")
    parser.add_argument("--value-bytes", type=int, default=0, help="with --topic: its total value bytes")
    parser.add_argument("--contenders", default="floor,floor-tuned,drain,baseline")
    parser.add_argument("--keep", action="store_true", help="keep the produced topic (default: deleted)")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        contender_main(args.contender, args.topic)
        return
    settings = Settings.from_env()
    if args.topic:
        topic, value_bytes = args.topic, args.value_bytes
    else:
        started = time.perf_counter()
        topic, value_bytes = produce(settings, args.table, args.events)
        print(f"produced {args.events:,} events ({value_bytes / 1e6:,.0f} MB of values) into {topic} "
              f"in {time.perf_counter() - started:.0f}s", flush=True)
    results = []
    for name in args.contenders.split(","):
        run = subprocess.run([sys.executable, __file__, "--contender", name, "--topic", topic],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(f"{name} failed:\n{run.stderr[-3000:]}")
        result = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{name}: {result['events']:,} events in {result['seconds']:.1f}s, peak RSS "
              f"{result['peak_rss_mib']:.0f} MiB", flush=True)
    print("\n| contender | events | seconds | events/s | MB/s | peak RSS MiB |\n|---|---|---|---|---|---|")
    for r in results:
        mb = value_bytes / 1e6 * r["events"] / max(args.events, 1) if value_bytes else float("nan")
        print(f"| {r['contender']} | {r['events']:,} | {r['seconds']:.1f} | {r['events'] / r['seconds']:,.0f} | "
              f"{mb / r['seconds']:,.1f} | {r['peak_rss_mib']:.0f} |")
    if not args.keep and not args.topic:
        _remove(settings, topic)
    by_name = {r["contender"]: r["events"] / r["seconds"] for r in results}
    if {"drain", "baseline", "floor"} <= by_name.keys():
        print(f"\ndrain / baseline = {by_name['drain'] / by_name['baseline']:.2f}x; "
              f"drain / floor = {by_name['drain'] / by_name['floor']:.0%}")
    if {"drain", "floor-tuned"} <= by_name.keys():
        print(f"drain / floor-tuned = {by_name['drain'] / by_name['floor-tuned']:.0%}")


if __name__ == "__main__":
    main()
