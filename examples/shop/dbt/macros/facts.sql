{#
  What a fact build rebuilds. Facts are incremental by order: a build deletes the facts of the orders in
  its scope and inserts them again from the current state, so re-running it changes nothing.
  - full refresh: every order;
  - an interval (the vars `interval_start` and `interval_end`, ISO dates or timestamps, end exclusive; the
    warehouse DAG passes a daily or backfill run's data interval): the orders placed in it, so re-running a
    day replaces exactly that day, idempotently;
  - otherwise (after a drain): the orders that changed since the fact's last build (`orders_changed_since`).
  The build's time is recorded in `fact_builds` (not after an interval run: it did not look at the rest), so
  the next build knows where to start.
#}
{% macro fact_config() %}
{{ config(materialized='incremental', incremental_strategy='append',
          pre_hook="{% if is_incremental() %}delete from {{ this }} where {{ fact_rebuild_scope('order_id', 'placed_at') }}{% endif %}",
          post_hook="{% if rebuild_interval() is none %}insert into {{ fact_builds() }} values ('{{ escape_single_quotes(this.identifier) }}', current_timestamp){% endif %}") }}
{% endmacro %}

{# When each fact table was last built outside an interval run (created by the package's on-run-start hook). #}
{% macro fact_builds() -%}
    {{ target.schema }}.fact_builds
{%- endmacro %}

{% macro create_fact_builds() %}
    create table if not exists {{ fact_builds() }} (fact_table varchar not null, built_at timestamptz not null)
{% endmacro %}

{# A filter on a fact's rows (or its orders) that keeps what this build rebuilds; see above. #}
{% macro fact_rebuild_scope(order_id_column, placed_at_column) -%}
    {%- set interval = rebuild_interval() -%}
    {%- if interval -%}
        {{ placed_at_column }} >= cast('{{ escape_single_quotes(interval[0]) }}' as timestamptz)
            and {{ placed_at_column }} < cast('{{ escape_single_quotes(interval[1]) }}' as timestamptz)
    {%- elif is_incremental() -%}
        {{ order_id_column }} in ({{ orders_changed_since(
            "(select coalesce(max(built_at), timestamptz '-infinity') from " ~ fact_builds()
            ~ " where fact_table = '" ~ escape_single_quotes(this.identifier) ~ "')") }})
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}

{#
  The orders whose facts may differ from the last build at `since`: the order or one of its items got a new
  version, or its customer or one of its products did (a late dimension change can move the version an
  order joins to). Every version of a changed entity is rewritten with the build's `_versioned_at`.
#}
{% macro orders_changed_since(since) %}
    select order_id from {{ ref('int_orders_versioned') }} where _versioned_at > {{ since }}
    union
    select order_id from {{ ref('int_order_items_versioned') }} where _versioned_at > {{ since }}
    union
    select order_id from {{ ref('int_orders_versioned') }}
    where customer_id in (select customer_id from {{ ref('dim_customer') }} where _versioned_at > {{ since }})
    union
    select order_id from {{ ref('int_order_items_versioned') }}
    where product_id in (select product_id from {{ ref('dim_product') }} where _versioned_at > {{ since }})
{% endmacro %}

{#
  Dimensions are incremental by entity: a build replaces every version of the entities whose versions were
  rewritten since its last build (delete + insert by the entity's id), so it costs what changed.
#}
{% macro dimension_config(id_column) %}
{{ config(materialized='incremental', unique_key=id_column, incremental_strategy='delete+insert') }}
{% endmacro %}

{% macro versions_since_last_build() -%}
    {%- if is_incremental() -%}
    where _versioned_at > (select coalesce(max(_versioned_at), timestamptz '-infinity') from {{ this }})
    {%- endif -%}
{%- endmacro %}
