{#
  The change log of one source table, each change once, read from its change table in the DuckLake lake
  (`lake.main.<table>`, landed by cdc_drain; docs/lake.md).

  Staging models are incremental by lake snapshot: a build reads the changes committed after the snapshot
  its last build read up to (`lake_loads`) through `ducklake_table_changes`, so it costs what is new and
  never lists files. Rows a replay deleted from the lake are deleted here too (pre-hook), matched by their
  lake row id (`_lake_rowid`); their re-drained copies come back as new inserts. The first or a full build
  reads the table as of the newest snapshot. Debezium re-deliveries of the same change (after a connector
  restart the same LSN, key and operation come again at new offsets) collapse to the first delivery, also
  against the rows loaded by earlier builds. The lake itself holds each Kafka record once.
#}
{% macro deduplicated_changes(source_relation, key_columns) %}
    {%- set key = key_columns | join(', ') %}
    {%- set window = lake_window(source_relation.identifier) %}
    select *
    from (
        {%- if window.start is none %}
        select *, rowid as _lake_rowid, snapshot_id as _lake_snapshot
        from {{ source_relation }} at (version => {{ window.end }})
        {%- else %}
        select * exclude (snapshot_id, rowid, change_type), rowid as _lake_rowid, snapshot_id as _lake_snapshot
        from {{ lake_changes(source_relation.identifier, window) }} as change
        where change_type = 'insert'
            and rowid not in (
                select rowid from {{ lake_changes(source_relation.identifier, window) }} where change_type = 'delete'
            )
        {%- endif %}
    ) as new_change
    {%- if is_incremental() %}
    anti join {{ this }} as loaded_change using ({{ key }}, _lsn, _op)
    {%- endif %}
    qualify row_number() over (
        partition by {{ key }}, _lsn, _op order by _kafka_partition, _kafka_offset
    ) = 1
{% endmacro %}

{#
  Which lake snapshots a staging build reads.
  - end: the environment variable TIDEWATER_LAKE_SNAPSHOT where set (the warehouse DAG passes the snapshot its run
    took first, so every model of a run reads the same lake; read only at execution, not a var, so a changed
    snapshot keeps dbt's partial parsing), else the newest snapshot committed when the dbt invocation started
    (`run_started_at`), so the model and its hooks agree on it. (A snapshot stamped earlier but visible only
    later is read by the next build.)
  - start: one after the newest snapshot whose changes this model holds, or none for a first or full build
    (then the table is read as of `end`). start > end: nothing new.
  If the lake expired snapshots this model has not read, the build fails unless none of them held a change
  of the table still in it (then it starts at the oldest snapshot kept).
#}
{% macro lake_window(table) %}
    {%- if not execute %}{{ return({'start': none, 'end': 0}) }}{% endif %}
    {%- set found = run_query("select count(*) from information_schema.tables where table_catalog = 'lake' "
                              ~ "and table_schema = 'main' and table_name = '" ~ escape_single_quotes(table) ~ "'").columns[0].values()[0] %}
    {%- if not found %}
        {{ exceptions.raise_compiler_error(
            "the lake has no change table '" ~ table ~ "' (lake.main." ~ table ~ "): run the cdc_drain DAG "
            ~ "(or `make drain`) so the lake has its changes, then build again") }}
    {%- endif %}
    {%- set bounds = run_query("select max(snapshot_id) filter (where snapshot_time <= '" ~ run_started_at.isoformat()
                               ~ "'::timestamptz), min(snapshot_id) from lake.snapshots()").rows[0] %}
    {%- set end, oldest = bounds[0] if bounds[0] is not none else bounds[1], bounds[1] %}
    {%- set pinned = env_var('TIDEWATER_LAKE_SNAPSHOT', '') %}
    {%- if pinned not in ('', 'None') %}
        {%- set end = pinned | int %}
    {%- endif %}
    {%- set start = none %}
    {%- if is_incremental() %}
        {%- set last = run_query("select max(_lake_snapshot) from " ~ this).columns[0].values()[0] %}
        {%- set start = none if last is none else last + 1 %}
        {%- if start is not none and start < oldest %}
            {%- set unread = run_query("select count(*) from lake.main." ~ table ~ " where snapshot_id >= " ~ start
                                       ~ " and snapshot_id < " ~ oldest).columns[0].values()[0] %}
            {%- if unread %}
                {{ exceptions.raise_compiler_error(
                    "lake.main." ~ table ~ ": the lake expired snapshots " ~ start ~ ".." ~ (oldest - 1) ~ " before "
                    ~ this ~ " read their " ~ unread ~ " changes (the warehouse did not run for longer than the "
                    ~ "lake keeps snapshots): rebuild it with a full refresh (trigger the warehouse DAG with "
                    ~ "full_refresh: true)") }}
            {%- endif %}
            {%- set start = oldest %}
        {%- endif %}
    {%- endif %}
    {{ return({'start': start, 'end': end}) }}
{% endmacro %}

{# The changes of a table in a window (an empty window reads nothing). #}
{% macro lake_changes(table, window) -%}
    {%- if window.start > window.end -%}
        (select *, null::bigint as snapshot_id, null::bigint as rowid, null::varchar as change_type
         from lake.main.{{ table }} where false)
    {%- else -%}
        ducklake_table_changes('lake', 'main', '{{ escape_single_quotes(table) }}', {{ window.start }}, {{ window.end }})
    {%- endif -%}
{%- endmacro %}

{# The source table of a staging model: stg_<source>__<table> → <table>. #}
{% macro staged_table() -%}
    {{ this.identifier.split('__')[-1] }}
{%- endmacro %}

{# Up to which lake snapshot each staging model has read: one row per build (the reconciliation reads it). #}
{% macro lake_loads() -%}
    {{ target.schema }}.lake_loads
{%- endmacro %}

{% macro create_lake_loads() %}
    create table if not exists {{ lake_loads() }} (model varchar not null, snapshot_id bigint not null,
                                                  loaded_at timestamptz not null)
{% endmacro %}

{# Staging pre-hook: the rows a replay deleted from the lake go from the staging model too. #}
{% macro delete_replayed_changes() %}
    {%- set window = lake_window(staged_table()) %}
    {%- if is_incremental() and window.start is not none and window.start <= window.end %}
    delete from {{ this }} where _lake_rowid in (
        select rowid from {{ lake_changes(staged_table(), window) }} where change_type = 'delete'
    )
    {%- endif %}
{% endmacro %}

{# Staging post-hook. #}
{% macro record_lake_load() %}
    insert into {{ lake_loads() }} values ('{{ escape_single_quotes(this.identifier) }}', {{ lake_window(staged_table()).end }}, current_timestamp)
{% endmacro %}

{# The names of the change metadata columns (change_columns), comma-separated. #}
{% macro change_metadata() -%}
    change_id, _op, _source_ts, _lsn, _tx_id, _kafka_topic, _kafka_partition, _kafka_offset, _ingested_at,
    _lake_rowid, _lake_snapshot, _loaded_at
{%- endmacro %}

{# Change metadata every staging model keeps, under its lake names. #}
{% macro change_columns() %}
        _kafka_topic || ':' || _kafka_partition || ':' || _kafka_offset as change_id,
        _op,
        _source_ts,
        _lsn,
        _tx_id,
        _kafka_topic,
        _kafka_partition,
        _kafka_offset,
        _ingested_at,
        _lake_rowid,
        _lake_snapshot,
        current_timestamp as _loaded_at  -- the build that loaded the change: scopes its tests (tests.sql)
{% endmacro %}
