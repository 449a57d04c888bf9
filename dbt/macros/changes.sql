{#
  The change log of one shop table, each change once, read from the raw Parquet cdc_drain landed.

  Staging models are incremental: a run reads only the lake files its table has not loaded yet (the
  file name is kept in `_lake_file`), so a build costs what is new, not the whole history. A full
  refresh reads every file and gives the same rows. Each change is kept once:
  1. exact duplicates of one Kafka record (the same topic, partition and offset landed twice) are removed;
  2. Debezium re-deliveries of the same change (after a connector restart the same LSN, key and operation
     come again at new offsets) collapse to the first delivery.
  Both rules also hold against the rows loaded by earlier runs.
#}
{% macro deduplicated_changes(source_relation, key_column) %}
    {%- set files = unloaded_lake_files(source_relation.identifier) %}
    select *
    from (
        select *
        from {{ read_lake(files or lake_files(source_relation.identifier)[-1:]) }}
        {%- if not files %}
        where false  -- nothing new: no rows, but the lake's columns
        {%- endif %}
        qualify row_number() over (
            partition by _kafka_topic, _kafka_partition, _kafka_offset order by _ingested_at
        ) = 1
    ) as each_record_once
    {%- if is_incremental() %}
    anti join {{ this }} as loaded_record using (_kafka_topic, _kafka_partition, _kafka_offset)
    anti join {{ this }} as loaded_change using ({{ key_column }}, _lsn, _op)
    {%- endif %}
    {#- In sequence, not in one qualify: both windows over the same rows could each keep another copy. #}
    qualify row_number() over (
        partition by {{ key_column }}, _lsn, _op order by _kafka_partition, _kafka_offset
    ) = 1
{% endmacro %}

{# Where cdc_drain lands a table's changes: raw/<table>/dt=<date of the change>/<topic>-p<N>-o<first>-<last>.parquet #}
{% macro lake_glob(table) -%}
    s3://{{ var('lake_bucket') }}/raw/{{ table }}/*/*.parquet
{%- endmacro %}

{# Every raw file of a table, in name order; an error that says what to do when there is none yet. #}
{% macro lake_files(table) %}
    {%- if not execute %}{{ return(['']) }}{% endif %}
    {%- set files = run_query("select file from glob('" ~ lake_glob(table) ~ "') order by file").columns[0].values() %}
    {%- if not files %}
        {{ exceptions.raise_compiler_error(
            "no raw files for the shop table '" ~ table ~ "' under " ~ lake_glob(table)
            ~ ": run the cdc_drain DAG (or `make drain`) so the lake has its changes, then build again") }}
    {%- endif %}
    {{ return(files | list) }}
{% endmacro %}

{# The raw files of a table this (incremental) model has not loaded yet; every file on a full build. #}
{% macro unloaded_lake_files(table) %}
    {%- set files = lake_files(table) %}
    {%- if not (execute and is_incremental()) %}{{ return(files) }}{% endif %}
    {%- set loaded = run_query("select distinct _lake_file from " ~ this).columns[0].values() %}
    {{ return(files | reject('in', loaded) | list) }}
{% endmacro %}

{# Change rows of the given files, columns unioned by name (a column added mid-stream is null in older files). #}
{% macro read_lake(files) -%}
    read_parquet(
        [{% for file in files %}'{{ file }}'{{ ", " if not loop.last }}{% endfor %}],
        union_by_name = true, hive_partitioning = true, filename = '_lake_file'
    )
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
        _lake_file,
        current_timestamp as _loaded_at  -- the build that loaded the change: scopes its tests (tests.sql)
{% endmacro %}
