"""cdc_drain: Kafka CDC topics → typed Parquet on S3, exactly once. Wiring to the stack lives here."""

from __future__ import annotations

import difflib
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException

from tidewater.cdc.topics import consumer_config
from tidewater.config import Settings, get_connection
from tidewater.drain import drainer
from tidewater.drain.drainer import DrainLimits, DrainResult, Replay
from tidewater.lake import Lake
from tidewater.lake import objects as layout

# The drain stops reading while the previous chunk is still being written, so librdkafka's 64 MiB prefetch
# queue fills; by default librdkafka then waits a whole second before fetching again, which tripled the
# drain's time (docs/benchmarks.md). Fetch again as soon as there is room.
FETCH_TUNING = {"fetch.queue.backoff.ms": 10}

log = logging.getLogger(__name__)


def kafka_consumer(settings: Settings, group_id: str | None = None) -> Consumer:
    """A consumer from the Kafka connection's librdkafka extras; offsets only ever committed by hand."""
    overrides = {"group.id": group_id} if group_id else {}
    return Consumer(consumer_config(settings, **overrides, **{
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        **FETCH_TUNING,
    }))


def open_lake(settings: Settings) -> Lake:
    """The lake catalog attached as its writer, and the bucket through the Amazon provider's connection."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from tidewater.lake import catalog
    from tidewater.lake.objects import Bucket

    return Lake(catalog.connect(settings), Bucket(S3Hook(aws_conn_id=settings.lake_conn_id).get_conn(),
                                                 settings.lake_bucket),
                get_connection(settings.lake_catalog_conn_id))


def kafka_topic_ids(settings: Settings, topics: list[str]) -> dict[str, str]:
    """Kafka's id of each topic now (a topic deleted and created again gets a new one), in one request."""
    from confluent_kafka import TopicCollection
    from confluent_kafka.admin import AdminClient

    if not topics:
        return {}
    admin = AdminClient(consumer_config(settings))
    described = admin.describe_topics(TopicCollection(list(topics)), request_timeout=30)
    return {topic: str(future.result().topic_id) for topic, future in described.items()}


def kafka_topic_id(settings: Settings, topic: str) -> str:
    """Kafka's id of the topic now."""
    return kafka_topic_ids(settings, [topic])[topic]


def limits(settings: Settings) -> DrainLimits:
    return DrainLimits(
        max_records_per_run=settings.drain_max_records_per_run,
        file_max_rows=settings.drain_file_max_rows,
        file_max_bytes=settings.drain_file_max_bytes,
        max_bad_share=settings.drain_max_bad_share,
    )


def discover_partitions(consumer: Consumer, settings: Settings) -> dict[str, list[int]]:
    """The partitions of every topic cdc_drain drains (the settings' topic pattern), by topic, sorted."""
    pattern = settings.topic_pattern
    topics = consumer.list_topics(timeout=30).topics
    return {topic: sorted(topics[topic].partitions) for topic in sorted(topics) if pattern.match(topic)}


def high_watermarks(consumer: Consumer, partitions: Mapping[str, list[int]]) -> dict[str, dict[int, int]]:
    """Every partition's high watermark, read together: where one cdc_drain run cuts all its slices, so a run lands
    the tables as of one instant (an order and the customer created before it, in another topic, together)."""
    from confluent_kafka import TopicPartition

    wanted = [TopicPartition(topic, partition, OFFSET_END) for topic, numbers in partitions.items()
              for partition in numbers]
    ends: dict[str, dict[int, int]] = {}
    for found in consumer.offsets_for_times(wanted, timeout=30) if wanted else []:
        if found.error is not None:
            raise KafkaException(found.error)
        ends.setdefault(found.topic, {})[found.partition] = found.offset
    return ends


def discover_topics(consumer: Consumer, settings: Settings) -> list[str]:
    return list(discover_partitions(consumer, settings))


def pending_records(consumer: Consumer, ends: Mapping[str, Mapping[int, int]]) -> dict[tuple[str, int], int]:
    """(topic, partition) → records from the drain group's committed offset (the lake's position as the last drain
    left it) up to `ends`; the whole partition where the group has none. An estimate to share work by: the lake's
    positions decide what is drained."""
    from confluent_kafka import TopicPartition

    wanted = [TopicPartition(topic, partition) for topic, numbers in ends.items() for partition in numbers]
    committed = {(c.topic, c.partition): c.offset for c in consumer.committed(wanted, timeout=30)} if wanted else {}
    return {(topic, partition): end - max(committed.get((topic, partition), 0), 0)
            for topic, numbers in ends.items() for partition, end in numbers.items()}


LABEL_MAX = 250  # Airflow's limit on a rendered map index


def share_slices(slices: list[dict], pending: Mapping[tuple[str, int], int], tasks: int) -> list[dict]:
    """The run's slices shared out over at most `tasks` drain tasks (`{"label": ..., "slices": [...]}`), none empty:
    the largest slice first to the task with the fewest records (then slices) so far, so a topic's partitions, of
    about one size, go to different tasks; each task's slices in topic order. The label (its map index) names them."""
    loads: list[tuple[int, list[dict]]] = [(0, []) for _ in range(min(tasks, len(slices)))]
    for piece in sorted(slices, key=lambda s: (-pending.get((s["topic"], s["partition"]), 0),
                                               s["topic"], s["partition"])):
        n = min(range(len(loads)), key=lambda i: (loads[i][0], len(loads[i][1]), i))  # ties: the fewest slices
        records, pieces = loads[n]
        loads[n] = (records + pending.get((piece["topic"], piece["partition"]), 0), [*pieces, piece])
    shares = []
    for _, pieces in loads:
        pieces.sort(key=lambda s: (s["topic"], s["partition"]))
        label = ", ".join(f"{s['topic']}[{s['partition']}]" for s in pieces)
        if len(label) > LABEL_MAX:
            more = f" … ({len(pieces)} slices)"
            label = label[:LABEL_MAX - len(more)] + more
        shares.append({"label": label, "slices": pieces})
    return shares


class DrainsFailed(Exception):
    """More than one slice of a drain task failed (each one's error is in the task's log)."""


def drain_slices(settings: Settings, slices: list[dict], params: Mapping[str, Any],
                 landed: Callable[[DrainResult], None]) -> list[dict]:
    """Drains each slice (`topic`, `topic_id`, `partition`, up to `until`) in its own lake commit, one after another
    through one consumer and one lake session, and calls `landed` with each one's result. Every slice is tried;
    then the error of the one that failed is raised (DrainsFailed naming each, when several did). Returns the
    results (DrainResult.as_dict)."""
    results: list[dict] = []
    failures: list[tuple[str, Exception]] = []
    consumer = kafka_consumer(settings)
    lake = None
    try:
        lake = open_lake(settings)
        for piece in slices:
            topic, partition = piece["topic"], piece["partition"]
            try:
                result = drainer.drain_topic(
                    consumer, lake, topic, piece["topic_id"], limits(settings),
                    replay=replay_request(params, topic), accept_quarantine=accept_quarantine(params, topic),
                    accept_recreated_topic=accept_recreated_topic(params, topic),
                    partitions=[partition], until={partition: piece["until"]})
            except Exception as error:  # the task's other slices are still drained, then it fails
                log.exception("the drain of %s[%d] failed", topic, partition)
                failures.append((f"{topic}[{partition}]", error))
                continue
            landed(result)
            results.append(result.as_dict())
    finally:
        consumer.close()
        if lake is not None:
            lake.con.close()
    if len(failures) == 1:
        raise failures[0][1]
    if failures:
        raise DrainsFailed("; ".join(f"{name}: {type(error).__name__}: {error}" for name, error in failures)) \
            from failures[0][1]
    return results


class ParamError(ValueError):
    pass


OFFSETS_EXAMPLE = '{"0": 1200}'
TOPIC_PARAMS = ("replay_topic", "accept_quarantine_topic", "accept_recreated_topic")
_WHOLE = re.compile(r"[0-9]+")


def check_params(params: Mapping[str, Any], topics: list[str],
                 partitions: Mapping[str, Collection[int]] | None = None) -> None:
    """Fails a manual run whose params name a topic cdc_drain does not drain, or give a malformed replay (or, given
    the topics' `partitions`, one from offsets of a partition the topic does not have)."""
    for name in TOPIC_PARAMS:
        value = params.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str) or value not in topics:
            close = difflib.get_close_matches(str(value), topics, n=1)
            raise ParamError(f"param {name}={value!r} is not a topic cdc_drain drains"
                             + (f" (did you mean {close[0]!r}?)" if close else "")
                             + f"; the topics are: {', '.join(topics) or '(none found)'}")
    if params.get("replay_topic"):
        topic = params["replay_topic"]
        replay = replay_request(params, topic)
        known = set(partitions.get(topic, ())) if partitions is not None else None
        if replay is not None and replay.offsets is not None and known is not None and set(replay.offsets) - known:
            raise ParamError(f"replay_from_offsets={params['replay_from_offsets']!r}: {topic} has no partition "
                             f"{', '.join(map(str, sorted(set(replay.offsets) - known)))} (its partitions are "
                             f"{', '.join(map(str, sorted(known)))})")
    elif params.get("replay_from_timestamp") or params.get("replay_from_offsets"):
        raise ParamError("replay_from_timestamp / replay_from_offsets need replay_topic: the topic to replay, one of "
                         f"{', '.join(topics) or '(none found)'}")


def accept_quarantine(params: Mapping[str, Any], topic: str) -> bool:
    """Whether a person accepted, for this run, more quarantined records of `topic` than max_bad_share."""
    return bool(params.get("accept_quarantine_topic")) and params["accept_quarantine_topic"] == topic


def accept_recreated_topic(params: Mapping[str, Any], topic: str) -> bool:
    """Whether a person accepted, for this run, that `topic` was deleted and created again."""
    return bool(params.get("accept_recreated_topic")) and params["accept_recreated_topic"] == topic


def _whole(value: object) -> int | None:
    """A non-negative whole number given as an int or digits, else None (bools and floats are not offsets)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value)
    return None


def _replay_offsets(offsets: object) -> dict[int, int]:
    if not isinstance(offsets, Mapping):
        raise ParamError(f"replay_from_offsets={offsets!r}: expected {{partition: offset}}, an object of "
                         f"partition → non-negative whole offset, e.g. {OFFSETS_EXAMPLE}")
    parsed = {}
    for partition, offset in offsets.items():
        number, position = _whole(partition), _whole(offset)
        if number is None or position is None:
            raise ParamError(f"replay_from_offsets={offsets!r}: expected {{partition: offset}} with non-negative "
                             f"whole numbers, e.g. {OFFSETS_EXAMPLE}; {partition!r}: {offset!r} is not")
        parsed[number] = position
    return parsed


def replay_request(params: Mapping[str, Any], topic: str) -> Replay | None:
    """The replay a manual run asks of `topic` (params replay_topic + _from_timestamp or _from_offsets)."""
    if not params.get("replay_topic") or params["replay_topic"] != topic:
        return None
    timestamp, offsets = params.get("replay_from_timestamp"), params.get("replay_from_offsets")
    if (timestamp not in (None, "")) == (offsets not in (None, "", {})):
        raise ParamError(f"replay of {topic}: give exactly one of replay_from_timestamp "
                         f"(ISO 8601, e.g. 2026-11-23T08:00:00Z) or replay_from_offsets (e.g. {OFFSETS_EXAMPLE})")
    if timestamp not in (None, ""):
        try:
            moment = datetime.fromisoformat(timestamp) if isinstance(timestamp, str) else None
        except ValueError:
            moment = None
        if moment is None:
            raise ParamError(f"replay_from_timestamp={timestamp!r} is not an ISO 8601 time, "
                             "e.g. 2026-11-23T08:00:00Z")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return Replay(timestamp_ms=int(moment.timestamp() * 1000))
    return Replay(offsets=_replay_offsets(offsets))


def report_quarantine(settings: Settings, lake: Lake, *, dag_id: str, run_id: str) -> dict:
    """Mails one report of every committed quarantine file not reported before, then records them as reported
    (docs/alerts.md). Returns what it reported: topic → records."""
    from tidewater.alerts import messages, notify
    from tidewater.drain import quarantine

    files = quarantine.unreported_files(lake)
    if not files:
        return {}
    topics = [messages.QuarantinedTopic(t.topic, t.records, dict(t.reasons), [lake.bucket.uri(key) for key in t.keys])
              for t in quarantine.summarize(lake, files)]
    notify.send(settings, messages.quarantine_report_email(
        dag_id=dag_id, run_id=run_id, run_link=messages.run_url(settings.airflow_url, dag_id, run_id),
        prefix_uri=lake.bucket.uri(layout.QUARANTINE + "/"), topics=topics))
    quarantine.mark_reported(lake, [f.key for f in files])
    return {t.topic: t.records for t in topics}


@dataclass(frozen=True)
class RunSummary:
    """What one cdc_drain run landed: rows and remaining lag per topic, the lake snapshot of its last commit, and
    the slices (`<topic>[<partition>]`) whose drain did not succeed."""

    rows: dict[str, int]
    remaining_lag: dict[str, int]
    snapshot_id: int | None
    failed: list[str]

    def extra(self) -> dict:
        """The lake asset event's extra (the warehouse reads the lake as of `snapshot_id`)."""
        return {"rows": self.rows, "remaining_lag": self.remaining_lag, "snapshot_id": self.snapshot_id}


def run_summary(slices: list[dict], results: list[dict]) -> RunSummary:
    """The summary of a run from its slices (discover_topics) and the results of the drains that succeeded (a
    failed drain returns none)."""
    rows: dict[str, int] = {}
    lag: dict[str, int] = {}
    done: set[tuple[str, int]] = set()
    for result in results:
        topic = result["topic"]
        done.update((topic, p["partition"]) for p in result["partitions"])
        lag[topic] = lag.get(topic, 0) + result["remaining_lag"]
        if result["rows"]:
            rows[topic] = rows.get(topic, 0) + result["rows"]
    snapshots = [r["snapshot_id"] for r in results if r["snapshot_id"] is not None]
    failed = [f"{s['topic']}[{s['partition']}]" for s in slices if (s["topic"], s["partition"]) not in done]
    return RunSummary(rows, lag, max(snapshots, default=None), failed)


def yield_to_warehouse(warehouse_running: Callable[[], int], timeout_s: float, poll_s: float = 0.25,
                       unread: Callable[[], bool] = lambda: False, start_grace_s: float = 5.0) -> float:
    """Waits while `warehouse_running()` (the warehouse DAG's running runs) is above 0, and while `unread()` (a
    drain landed what no warehouse run has read yet: its run is about to start) for at most `start_grace_s` in a
    row (a paused DAG's run never starts); at most `timeout_s` in all. Returns the seconds waited.

    A drain that starts during a warehouse run would land rows that run does not read and slow it down on a small
    machine: after waiting, the drain lands what the next warehouse run reads. Without `unread`, a drain that
    landed during a warehouse run (its run created only once the running one ends) let the next drain find the
    warehouse idle between the two, and drains and warehouse runs overlapped from then on."""
    started = time.monotonic()
    unread_since = None
    while timeout_s > 0:
        now = time.monotonic()
        if warehouse_running():
            unread_since = None
        elif not unread():
            break
        else:
            unread_since = unread_since or now
            if now - unread_since >= start_grace_s:
                log.info("no warehouse run started %.0f s after a drain landed changes it has not read (is the DAG "
                         "paused?): draining now", now - unread_since)
                break
        if now - started >= timeout_s:
            log.warning("a warehouse run is still running after %.0f s (TIDEWATER_DRAIN_YIELD_SECONDS): draining now",
                        now - started)
            break
        time.sleep(poll_s)
    waited = time.monotonic() - started
    if waited >= poll_s:
        log.info("waited %.1f s for the warehouse run to end", waited)
    return waited
