{#
  Date-bounded rebuilds. Facts are incremental by the time their grain happened (an order's placed_at):
  with the vars `interval_start` and `interval_end` (ISO dates or timestamps, end exclusive; the warehouse
  DAG passes a backfill run's data interval) a run deletes that interval's facts and inserts them again,
  so re-running a day replaces exactly that day, idempotently. Without the vars a run rebuilds every fact
  from the current state, which DuckDB does in a moment once the history is built incrementally.
#}
{% macro fact_config() %}
{{ config(materialized='incremental', incremental_strategy='append',
          pre_hook="{% if is_incremental() %}delete from {{ this }} where {{ in_rebuild_interval('placed_at') }}{% endif %}") }}
{% endmacro %}

{% macro rebuild_interval() %}
    {#- An empty var is unset: the warehouse DAG always passes both, empty outside interval runs. #}
    {%- set start, end = var('interval_start', none) or none, var('interval_end', none) or none %}
    {%- if (start is none) != (end is none) %}
        {{ exceptions.raise_compiler_error(
            "the rebuild interval needs both vars, interval_start and interval_end (got interval_start="
            ~ start ~ ", interval_end=" ~ end ~ "); pass both, e.g. --vars '{interval_start: 2026-01-01, interval_end: 2026-01-02}'") }}
    {%- endif %}
    {{ return(none if (start is none or flags.FULL_REFRESH) else (start, end)) }}
{% endmacro %}

{# A filter on `column` that keeps the rebuild interval; `true` when there is none. #}
{% macro in_rebuild_interval(column) -%}
    {%- set interval = rebuild_interval() -%}
    {%- if interval -%}
        {{ column }} >= cast('{{ interval[0] }}' as timestamptz) and {{ column }} < cast('{{ interval[1] }}' as timestamptz)
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
