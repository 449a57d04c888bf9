"""
### cdc_drain: Kafka CDC topics → the DuckLake lake, exactly once

When new CDC records arrive (an `AssetWatcher` on the topics, `TIDEWATER_DRAIN_SCHEDULE`) and every
`TIDEWATER_DRAIN_INTERVAL_MINUTES` (default 5) as a fallback, this DAG finds the shop's Debezium topics
(`TIDEWATER_DRAIN_TOPIC_REGEX`; the heartbeat topic is never drained) and shares their partitions out over at most
`TIDEWATER_DRAIN_TASKS` mapped tasks (`drain_partitions`, map index: its `<topic>[<partition>]`s), the busiest
first to the least loaded, so a topic with more partitions is drained by several workers at once. Each task drains
its partitions one after another, each up to the high watermark `discover_topics` read for all of them at one
instant (so a run lands every table as of one moment), from the position the lake holds, in its own commit; a
partition that fails does not stop the task's others, then the task fails with its error. While a `warehouse` run
is running, or about to read what the previous drain landed, `discover_topics` first waits for it to end (at most
`TIDEWATER_DRAIN_YIELD_SECONDS`, 120; 0: never): drains and warehouse runs take turns, and each drain lands what
the next warehouse run reads. Rows land in the change table `lake.main.<table>` (Parquet under
`s3://<bucket>/lake/main/<table>/`), poison records in `quarantine/<topic>/`; each partition's files and position
are committed in one DuckLake transaction, so a crash at any point, a retry or a second drain of the partition
loses and doubles nothing (protocol:
`include/tidewater/lake/__init__.py`, docs/lake.md).

Each table that landed data gets an asset event (`s3://<bucket>/lake/main/<table>`: rows, files,
quarantined, offsets before/after, remaining lag, newest source time); `lake_updated`, after every drain, reports
the run's quarantine (below) and then, if every drain succeeded, emits one `s3://<bucket>/lake/main` event per run
(with the lake snapshot of its last commit: the warehouse reads the lake as of it), which schedules the warehouse;
if one failed, it fails too (no retry, no second alert), and so does the run. Each drain's OpenLineage events name the
topic it read and the table it wrote (docs/lineage.md).

**Replay** (recovery, backwards only): trigger with `replay_topic` and either `replay_from_timestamp` or
`replay_from_offsets` (partition → non-negative offset, e.g. `{"0": 1200}`) before the lake's position; the
changes from there on are deleted and drained again. **A recreated topic** (new Kafka topic id) fails until a
run sets `accept_recreated_topic` to it. A topic that is not drained, or malformed offsets, fail the run at once
(`discover_topics`, listing the real topics).

**Quarantine** (docs/alerts.md): records that cannot be decoded go to `quarantine/<topic>/` and the rest
lands. Above `TIDEWATER_DRAIN_MAX_BAD_SHARE` (5%) of a partition's slice, its task fails *before* committing, so
every retry and every later run fails the same way (and mails) until the cause is fixed or a person accepts
them for one run: trigger with `accept_quarantine_topic` = that topic. Every quarantined record, under the
limit too, is reported once: `lake_updated` sends one email per run (records, reasons, file URIs) and
records the reported files in `_alerts/quarantine_reported.json`; the table's asset event carries the
reasons and file keys. The warehouse does not publish while a committed quarantine file is unreported.

**Alerts** (docs/alerts.md): a failed task mails its error and log link; a run not finished
`TIDEWATER_DRAIN_DEADLINE_MINUTES` (20) after it was queued mails one Deadline Alert. `airflow dags test`
parses this DAG without the
deadline (Airflow 3.3 cannot finish a test run of a DAG that has one); the scheduler always has it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, DeltaTriggerTimetable, Param, Variable, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tidewater import assets, lineage
from tidewater.alerts import deadlines
from tidewater.alerts.notify import UpstreamFailed, on_task_failure
from tidewater.config import Settings

settings = Settings.from_env()


interval = DeltaTriggerTimetable(timedelta(minutes=settings.drain_interval_minutes))
WAREHOUSE = "warehouse"  # the DAG a run waits for (dags/warehouse.py)


@dag(
    # New CDC records (the triggerer's watcher on the topics), and the interval as a fallback; or the interval alone.
    schedule=AssetOrTimeSchedule(timetable=interval, assets=assets.cdc_changes(settings))
    if assets.watches(settings) else interval,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tidewater", "cdc", "lake"],
    default_args={"owner": "tidewater", "retries": 2, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": on_task_failure},
    deadline=deadlines.deadline_alerts(settings, "cdc_drain"),
    params={
        "replay_topic": Param(None, type=["null", "string"], description="topic to replay, e.g. shop.shop.orders"),
        "replay_from_timestamp": Param(None, type=["null", "string"],
                                       description="ISO 8601 time to replay from, e.g. 2026-11-23T08:00:00Z"),
        "replay_from_offsets": Param(None, type=["null", "object"],
                                     description='partition → offset to replay from, e.g. {"0": 1200}'),
        "accept_recreated_topic": Param(None, type=["null", "string"],
                                        description="topic that was deleted and created again: this run drains "
                                                    "the new topic from its start (the old changes stay)"),
        "accept_quarantine_topic": Param(None, type=["null", "string"],
                                         description="topic whose quarantined records this run accepts above "
                                                     "TIDEWATER_DRAIN_MAX_BAD_SHARE (it commits and reports them)"),
    },
)
def cdc_drain():
    @task(inlets=[assets.raw_lake(settings)])  # to read the previous drain's event (what it landed)
    def discover_topics(params: dict | None = None, **context) -> list[dict]:
        from tidewater import drain

        def previous_drain_unread() -> bool:
            newest = list(context["inlet_events"][assets.raw_lake(settings)].ascending(False).limit(1))
            return assets.unread(newest[0].extra.get("snapshot_id") if newest else None,
                                 Variable.get(assets.lake_read_variable(settings), default=None))

        # Drains and warehouse runs take turns (TIDEWATER_DRAIN_YIELD_SECONDS): this run lands what the next reads.
        # Also while the warehouse run that reads the previous drain's changes has not started yet (Airflow creates
        # it only once the running one ended): else this drain found the warehouse idle between the two runs, and
        # drains and warehouse runs overlapped from then on, each change reaching the marts a run later.
        drain.yield_to_warehouse(lambda: context["ti"].get_dr_count(dag_id=WAREHOUSE, states=["running"]),
                                 settings.drain_yield_seconds, unread=previous_drain_unread)
        consumer = drain.kafka_consumer(settings)
        try:
            partitions = drain.discover_partitions(consumer, settings)
            try:
                drain.check_params(params or {}, list(partitions), partitions)
            except drain.ParamError as error:
                raise AirflowFailException(str(error)) from error  # a retry would fail the same way
            ends = drain.high_watermarks(consumer, partitions)  # the run's slices end at one instant
            pending = drain.pending_records(consumer, ends)
        finally:
            consumer.close()
        ids = drain.kafka_topic_ids(settings, list(partitions))
        slices = [{"topic": topic, "topic_id": ids[topic], "partition": partition, "until": ends[topic][partition]}
                  for topic, numbers in partitions.items() for partition in numbers]
        return drain.share_slices(slices, pending, settings.drain_tasks)

    @task(outlets=[assets.RAW_TABLES], map_index_template="{{ task.op_kwargs['label'] }}")
    def drain_partitions(label: str, slices: list[dict], params: dict | None = None,
                         outlet_events=None) -> list[dict]:
        from tidewater import drain
        from tidewater.lake.objects import table_of

        def landed(result) -> None:
            lineage.report_drain(settings, result.topic, table_of(result.topic))  # OpenLineage: topic → table
            if result.rows or result.quarantined:
                outlet_events[assets.RAW_TABLES].add(assets.raw_table(settings, table_of(result.topic)),
                                                     extra=result.asset_extra())

        return drain.drain_slices(settings, slices, params or {}, landed)

    # After every drain, failed ones too: their quarantine is reported first (a topic above the quarantine limit must
    # not hide the others' reports, and the warehouse a drain triggers must find it reported), then the run's one
    # lake event, only if every drain landed.
    @task(outlets=[assets.raw_lake(settings)], trigger_rule="all_done")
    def lake_updated(results: list[dict], outlet_events=None, **context) -> dict:
        from tidewater import drain

        drain.report_quarantine(settings, drain.open_lake(settings), dag_id=context["dag"].dag_id,
                                run_id=context["run_id"])
        shares = context["ti"].xcom_pull(task_ids="discover_topics")
        if shares is None:  # discover_topics failed: nothing was drained
            raise UpstreamFailed("discover_topics failed: nothing was drained")
        summary = drain.run_summary([s for share in shares for s in share["slices"]],
                                    [r for task_results in results for r in task_results])
        if summary.failed:  # the run fails; the failed drains mailed (no retry: they have finished)
            raise UpstreamFailed(f"the drain tasks of {', '.join(summary.failed)} failed: no lake event for this run")
        if not summary.rows:
            raise AirflowSkipException("no new rows landed: nothing for the warehouse to do")
        outlet_events[assets.raw_lake(settings)].extra = summary.extra()
        return summary.extra()

    lake_updated(drain_partitions.expand_kwargs(discover_topics()))

cdc_drain()
