{#
  The interval a build rebuilds: (interval_start, interval_end) from the vars of the same names (ISO dates or
  timestamps, end exclusive; the warehouse DAG passes a daily or backfill run's data interval, empty otherwise),
  or none outside interval runs and on a full refresh. Models that rebuild by interval (the shop's facts) and
  the tests (tests.sql: an interval run tests every model whole) read it.
#}
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
