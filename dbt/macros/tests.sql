{#
  Data tests of a build look at what the build wrote. A test of an incremental model (staging:
  `_loaded_at`; versions and SCD2 dimensions: `_versioned_at`; facts: `_built_at`) reads only the model's
  latest batch, the rows its last build wrote: a versioned or dimension batch holds every version of each
  entity it touches and a fact batch every row of each order it touches, so their key tests are complete,
  and a fact batch's relationship tests check every row it added against the whole dimensions; staging's
  cross-batch duplicates are what its anti-joins prevent. Current state and marts are tested whole. A full
  refresh, an interval run (the daily run, backfills) and `--vars '{full_tests: true}'` test every model
  whole.

  This overrides dbt's get_where_subquery, which applies a test's `where` config; that still applies.
#}
{% macro get_where_subquery(relation) -%}
    {%- set filters = [config.get('where')] if config.get('where') else [] -%}
    {%- set batch_column = latest_batch_column(relation) -%}
    {%- if batch_column -%}
        {%- do filters.append(batch_column ~ " = (select max(" ~ batch_column ~ ") from " ~ relation ~ ")") -%}
    {%- endif -%}
    {%- if filters -%}
        {%- do return("(select * from " ~ relation ~ " where " ~ filters | join(" and ") ~ ") dbt_subquery") -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{% macro latest_batch_column(relation) %}
    {%- if not execute or flags.FULL_REFRESH or rebuild_interval() is not none or var('full_tests', false) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- for batch_column in ['_versioned_at', '_built_at', '_loaded_at'] if batch_column in columns -%}
        {{ return(batch_column) }}
    {%- endfor -%}
    {{ return(none) }}
{% endmacro %}
