"""
### warehouse: the DuckDB star schema, rebuilt from the CDC lake by dbt (run by Cosmos)

Runs after every `cdc_drain` run that landed new rows (scheduled on the `s3://<bucket>/lake/main` asset, one
event per drain run, so not once per table), once a day, and on demand. `dbt_build` builds the dbt project in
`dbt/` with one `dbt build` (Cosmos' dbt build operator, `TIDEWATER_DBT_THREADS` models at a time, 2 by default):
staging (each change once), intermediate (versions and current state per entity, built from the change log),
marts (SCD2 dimensions, facts, data marts), each model followed by its tests, so a model that fails its tests
stops what depends on it and the run fails after building everything else. A fact's relationship tests to the
dimensions run with the fact (indirect selection `buildable`). `select` (dbt's node selection) narrows a manual
run, e.g. `fct_orders+`. One task rather than one per model (docs/warehouse.md, "One task"): a run costs one dbt
start and one lake attach instead of 26, and a retry or a cleared task rebuilds the run's whole selection.

**Incremental, date-bounded.** A run costs what changed: staging reads only lake files it has not
loaded, versions are rebuilt for the keys those files touch, current state is a view, dimensions replace
the entities with new versions, facts the orders that changed since their last build (docs/warehouse.md).
An interval run rebuilds the facts of the orders placed in its interval instead: the daily run and each
backfill run rebuild their data interval (one day), and a manual run can pass `interval_start` /
`interval_end` (YYYY-MM-DD, end exclusive). `full_refresh` rebuilds every model from the whole lake
(needed after adding a column to a model). Backfill from the UI or
`airflow backfill create --dag-id warehouse --from-date 2026-01-05 --to-date 2026-01-07`.

**One view of the lake.** `dbt_build` first (before dbt starts, its `pre_execute`) takes the snapshot of the newest
`cdc_drain` run's last commit (from the lake asset's newest event; the lake's newest snapshot if none says; a retry
or a cleared task takes it again); every staging model of the run
reads the lake as of it (`TIDEWATER_LAKE_SNAPSHOT` in dbt's environment), so no model sees a drain that committed
during the run and another not, nor a drain run half committed (a fact built from one table's newer changes than
its dimensions').
A lake that holds no change table yet as of it (a new deployment's daily run, created when the DAG is unpaused,
before the first drain) has nothing to build: `dbt_build` skips, saying so, and with it the whole run (Airflow
marks it a success). So does a lake that has the changes of some tables and not yet of others (a first drain that
ran while Debezium's snapshot was still writing): the skip names the tables it waits for.

**One writer.** A DuckDB file has one writer process, and other processes, readers too, are refused
its lock. Every task that opens the warehouse (`dbt_build`, `publish`, the `data_docs` DAG's `copy_warehouse`)
therefore takes the one slot of the `duckdb_warehouse` pool, so they run one after another even with parallel
workers; models run concurrently inside the one dbt process (its threads share the file).

**Gate, publish.** After the build, `publish` first refuses while the lake holds committed quarantine that was
never reported (docs/alerts.md; retried once), then gates: it copies the marts into a candidate file and
validates it with Great Expectations (the marts and suites of the module `TIDEWATER_GATE_MARTS` names: the
shop's by default); only if every expectation passes does it replace every mart in the marts DuckLake
catalog, in one transaction (docs/marts.md).
A failed gate publishes nothing, fails the task without a retry and names the failed expectations and their
data docs pages (rendered at once). The docs sites (dbt docs, the GX data docs) are the `data_docs` DAG's: a
run ends with its publication. See docs/gate.md.

**Alerts** (docs/alerts.md): a failed task mails its error and log link (a failed gate: every failed
expectation and the data docs links); a run not finished `TIDEWATER_WAREHOUSE_DEADLINE_MINUTES` (60) after
it was queued mails one Deadline Alert. `airflow dags test` parses this DAG without the deadline (Airflow
3.3 cannot finish a test run of a DAG that has one); the scheduler always has it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, Param, Variable, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from cosmos import ProfileConfig
from cosmos import settings as cosmos_settings
from cosmos.operators.local import DbtBuildLocalOperator

from tidewater import assets, lineage, rebuild
from tidewater.alerts import deadlines
from tidewater.alerts.notify import on_task_failure
from tidewater.config import Settings
from tidewater.gate import steps
from tidewater.gate.report import GateFailed

log = logging.getLogger(__name__)
settings = Settings.from_env()
dbt_project = Path(settings.dbt_project_dir)


# The dbt vars of the interval a run rebuilds (empty outside interval runs); see tidewater.rebuild.
INTERVAL = "rebuild_interval(params, dag_run.run_type, data_interval_start, data_interval_end)"


@dag(
    # New lake data, and once a day a rebuild of the previous day (a periodic schedule is what lets
    # `airflow backfill create` rebuild past days).
    schedule=AssetOrTimeSchedule(timetable=CronDataIntervalTimetable("@daily", timezone="UTC"),
                                 assets=[assets.raw_lake(settings)]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["tidewater", "warehouse", "dbt"],
    # Ahead of drain tasks for the executor's slots: a drained change is fresh only once this DAG has published it.
    default_args={"owner": "tidewater", "retries": 1, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": on_task_failure, "priority_weight": 10, "weight_rule": "absolute"},
    deadline=deadlines.deadline_alerts(settings, "warehouse"),
    params={
        "full_refresh": Param(False, type="boolean", description="Rebuild every model from the whole lake."),
        "interval_start": Param(None, type=["null", "string"], format="date",
                                description="Rebuild the facts of orders placed from this day (YYYY-MM-DD) ..."),
        "interval_end": Param(None, type=["null", "string"], format="date",
                              description="... until this day (exclusive). Both or neither."),
        "select": Param(None, type=["null", "string"],
                        description="Build only these dbt nodes (dbt's node selection, e.g. fct_orders+ or "
                                    "+dim_customer); empty: the whole project."),
    },
    user_defined_macros={"rebuild_interval": rebuild.rebuild_interval},
)
def warehouse():
    # The lake as of the newest cdc_drain run's last commit (its asset event says which), not whatever a drain in
    # flight has committed so far: that run cut every table's slice at one instant, so a fact finds its dimensions.
    # Taken as dbt_build starts (a retry or a cleared task takes the newest again), handed to dbt in its environment.
    def read_lake_as_of_the_newest_drain(context) -> None:
        from tidewater.lake import catalog
        from tidewater.tables import registry

        events = context["inlet_events"][assets.raw_lake(settings)]
        newest = list(events.ascending(False).limit(1))
        drained = newest[0].extra.get("snapshot_id") if newest else None
        # The whole project needs every table's changes; a narrowed selection may need only some, and a model of it
        # that reads a table the lake has no changes of yet fails, naming the table (dbt/macros/changes.sql).
        needed = () if context["params"].get("select") else registry().names
        try:
            snapshot = catalog.current_snapshot(settings, needed, drained=drained)
        except catalog.EmptyLake as empty:  # nothing to build: the run skips (success), every task after it too
            if drained is not None:  # taken: no drain waits for this run to read it
                Variable.set(assets.lake_read_variable(settings), str(drained))
            raise AirflowSkipException(f"{empty}; nothing to build. The cdc_drain run that lands them triggers "
                                       "this DAG again") from empty
        # What this run reads: the next drain waits until a run has taken the previous drain's changes (cdc_drain).
        Variable.set(assets.lake_read_variable(settings), str(snapshot))
        context["task"].env = {**context["task"].env, "TIDEWATER_LAKE_SNAPSHOT": str(snapshot)}
        log.info("this run reads the lake as of snapshot %s", snapshot)

    # One dbt invocation builds the run's selection (the whole project unless `select` narrows it): Cosmos' dbt build
    # operator, with the run's vars.
    build = DbtBuildLocalOperator(
        task_id="dbt_build",
        project_dir=dbt_project,
        profile_config=ProfileConfig(profile_name="tidewater", target_name="local",
                                     profiles_yml_filepath=dbt_project / "profiles.yml"),
        manifest_filepath=str(dbt_project / "target" / "manifest.json"),
        select="{{ params.select or 'fqn:*' }}",
        # "buildable": a test runs when all its parents are built, so a narrowed selection runs no test of a model it
        # left as it was (a fact's relationship tests run when the fact and its dimensions are all selected).
        indirect_selection="buildable",
        pool=settings.warehouse_pool,
        install_deps=False,
        emit_datasets=False,  # no Asset per dbt model: the published marts are this DAG's Asset
        # OpenLineage events of every model built (its refs and sources → the model) are read from dbt's manifest.json
        # and run_results.json; without OpenLineage dbt writes neither.
        # No dbt.log: it would go into the temporary copy of the project Cosmos deletes after the run, and writing its
        # debug lines cost ~0.5 s a build; the task log keeps dbt's info lines.
        dbt_cmd_flags=["--log-level-file", "none", *lineage.dbt_flags()],
        full_refresh="{{ params.full_refresh }}",
        vars={"interval_start": "{{ " + INTERVAL + "[0] }}", "interval_end": "{{ " + INTERVAL + "[1] }}"},
        # The run's lake snapshot reaches dbt in its environment (TIDEWATER_LAKE_SNAPSHOT), not as a var: dbt parses
        # the whole project again whenever --vars change, and only partially (the msgpack Cosmos caches in cache_dir)
        # otherwise.
        inlets=[assets.raw_lake(settings)],
        pre_execute=read_lake_as_of_the_newest_drain,
        env={},
        cache_dir=cosmos_settings.cache_dir / "warehouse__dbt_build",
    )

    # The gate and the publication in one task: a task start costs ~1 s on 2 cores, and a retry gates again.
    @task(pool=settings.warehouse_pool, outlets=[assets.published_marts(settings)])
    def publish() -> dict:
        try:
            return steps.gate_and_publish(settings).summary()
        except GateFailed as failed:
            raise AirflowFailException(str(failed)) from failed  # a retry would fail the same way

    build >> publish()


warehouse()
