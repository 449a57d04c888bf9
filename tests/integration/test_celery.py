"""The CeleryExecutor on the test instance (docs/executors.md): real Redis, two real `airflow celery worker` processes
(stack/stack.sh), the real scheduler. A cdc_drain run spreads its tasks over both workers and lands every record once;
a worker killed while it drains has its task retried on the other, nothing lost or doubled; and the end-to-end check
(tests.support.end_to_end, as test_end_to_end.py runs it through `airflow dags test`) holds with every task on the
workers: cdc_drain triggered under the scheduler, the warehouse run its lake event schedules.

The instance's Airflow runs the CeleryExecutor for this module only (tests.support.executors.airflow_on) and as
before afterwards. The drain tasks' labels (their map indexes) name their topic-partitions; the records are checked
from the lake's offsets per (topic, partition).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support import end_to_end, executors
from tests.support.lake import kafka_records, landed_offsets, wait_for_cdc_catch_up
from tidewater import drain
from tidewater.config import Settings
from tidewater.lake import commit
from tidewater_dev.airflow_api import AirflowApi
from tidewater_shop import simulator

WORKERS = {"worker1", "worker2"}


@pytest.fixture(scope="module")
def celery(shop_changes) -> Iterator[AirflowApi]:
    with executors.airflow_on("celery") as api:
        api.wait_for_dag("cdc_drain")
        yield api


def _drained_topics(settings: Settings) -> list[str]:
    consumer = drain.kafka_consumer(settings)
    try:
        return drain.discover_topics(consumer, settings)
    finally:
        consumer.close()


def _ends(settings: Settings, topics: list[str]) -> dict[str, dict[int, int]]:
    """topic → partition → high watermark now."""
    from confluent_kafka import TopicPartition

    consumer = drain.kafka_consumer(settings)
    try:
        metadata = consumer.list_topics(timeout=10).topics
        return {topic: {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                        for p in metadata[topic].partitions} for topic in topics}
    finally:
        consumer.close()


def _new_changes(settings: Settings) -> dict[str, dict[int, int]]:
    """Shop traffic on every table, captured by Debezium; the drained topics' high watermarks once it is in Kafka."""
    simulator.run_traffic(settings.shop_conninfo(), seed=int(time.time()), rate=2000, duration=1.0)
    wait_for_cdc_catch_up(settings)
    return _ends(settings, _drained_topics(settings))


def _assert_every_record_landed_once(settings: Settings, ends: dict[str, dict[int, int]]) -> None:
    """Below the lake's positions, which reach at least `ends`: each record of each topic-partition in the lake once
    (as a change or quarantined), tombstones never; nothing twice."""
    lake = drain.open_lake(settings)
    for topic, partitions in ends.items():
        positions = commit.read_positions(lake.con, topic).offsets
        assert all(positions.get(p, 0) >= end for p, end in partitions.items()), (topic, positions, partitions)
        landed = landed_offsets(lake, topic)
        assert [key for key, times in landed.items() if times > 1] == [], f"{topic}: records landed twice"
        records = kafka_records(settings, topic, ends={p: positions[p] for p in partitions})
        low = min((offset for _, offset in records), default=0)  # below: deleted by retention, not comparable
        expected = {key for key, value in records.items() if value is not None}
        assert {key for key in landed if key[1] >= low} == expected, f"{topic}: lake and Kafka differ"


def _drain_tasks(api: AirflowApi, run_id: str) -> list[dict]:
    return [ti for ti in executors.task_instances(api, "cdc_drain", run_id) if ti["task_id"] == "drain_partitions"]


def test_a_drain_run_runs_on_both_workers_and_lands_every_record_once(celery, shop_changes):
    ends = _new_changes(shop_changes)
    assert sum(len(partitions) for partitions in ends.values()) >= 6, ends

    run_id = executors.run_dag(celery, "cdc_drain")

    tasks = executors.task_instances(celery, "cdc_drain", run_id)
    assert {executors.worker_of(ti["hostname"]) for ti in tasks if ti["state"] == "success"} == WORKERS, \
        [(ti["task_id"], ti["map_index"], ti["hostname"]) for ti in tasks]
    drains = _drain_tasks(celery, run_id)  # TIDEWATER_DRAIN_TASKS: the workers' 4 slots (stack/stack.sh)
    assert len(drains) == 4, [ti["rendered_map_index"] for ti in drains]
    slices = [name for ti in drains for name in ti["rendered_map_index"].split(", ")]
    assert sorted(slices) == sorted(f"{topic}[{p}]" for topic, ps in ends.items() for p in ps)  # each in one task
    _assert_every_record_landed_once(shop_changes, ends)


def test_a_worker_killed_mid_drain_has_the_task_retried_on_the_other_with_nothing_lost_or_doubled(celery,
                                                                                                   shop_changes):
    ends = _new_changes(shop_changes)
    try:
        with executors.unpaused(celery, "cdc_drain"):
            run_id = executors.trigger(celery, "cdc_drain")
            victim = _first_running_drain(celery, run_id)
            killed = executors.worker_of(victim["hostname"])
            executors.kill_worker(killed)
            state = executors.wait_for_run(celery, "cdc_drain", run_id, timeout_s=600)
    finally:
        executors.stack("airflow-up", "celery")  # the killed worker again, for the tests after this one

    assert state == "success"
    [retried] = [ti for ti in _drain_tasks(celery, run_id) if ti["map_index"] == victim["map_index"]]
    assert retried["try_number"] > victim["try_number"], retried
    (survivor,) = WORKERS - {killed}
    assert executors.worker_of(retried["hostname"]) == survivor, retried
    _assert_every_record_landed_once(shop_changes, ends)


def _first_running_drain(api: AirflowApi, run_id: str, timeout_s: float = 180) -> dict:
    """The first drain task instance seen running on a worker (polled every 0.2 s: a drain takes seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = [ti for ti in _drain_tasks(api, run_id)
                   if ti["state"] == "running" and executors.worker_of(ti["hostname"]) in WORKERS]
        if running:
            return running[0]
        time.sleep(0.2)
    raise AssertionError(f"no drain task of run {run_id} ran within {timeout_s:.0f} s")


@pytest.mark.timeout(1200)  # two cycles under the scheduler, the warehouse's daily run first when unpausing starts it
def test_published_marts_follow_the_shop_through_two_cycles_run_by_the_workers(celery, shop_changes):
    cycles = end_to_end.assert_marts_follow_the_shop_through_two_cycles(
        shop_changes, lambda: end_to_end.scheduler_cycle(celery, shop_changes))

    hosts = {(dag_id, ti["task_id"], ti["map_index"]): ti["hostname"] for runs in cycles for dag_id, run_id in runs
             for ti in executors.task_instances(celery, dag_id, run_id) if ti["state"] == "success"}
    assert {dag_id for dag_id, _, _ in hosts} == {"cdc_drain", "warehouse", "data_docs"}, hosts
    assert {task: host for task, host in hosts.items() if executors.worker_of(host) not in WORKERS} == {}
