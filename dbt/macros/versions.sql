{#
  Versions of one entity from its change log (a staging model): every change is a version, ordered by
  LSN then Kafka offset, valid from its source commit time until the next version's. Built from the
  changes themselves, not from snapshots, so no intermediate change is missed. Columns Debezium sent as
  unchanged-TOAST placeholders carry the previous version's value forward. A delete is a version too
  (is_deleted); truncates are not versions of any row, nor is a snapshot's row that restates the version
  before it.
#}
{#
  Incremental: a run rebuilds every version of the keys whose changes arrived in lake snapshots it has not seen
  (delete + insert by key), from their whole history, so late or re-delivered changes land in order and a
  full refresh gives the same table. The rows it writes carry the build's time (`_versioned_at`): what the
  dimensions and facts downstream rebuild is what got newer versions since their own last build.
#}
{#
  Its materialization is in the generated properties (models/intermediate/_int_<source>__models.yml): incremental
  by key for a table whose history is kept, a view for one with `history: false` (then is_incremental() is false).
#}
{% macro entity_versions(source_name, table_name) %}
{%- set entry = registry_entry(source_name, table_name) %}
{%- set keys = entry.warehouse_key %}
{%- set key = keys | join(', ') %}
{%- set placeholder = "'__debezium_unavailable_value'" -%}
{%- set staging_model = 'stg_' ~ source_name ~ '__' ~ table_name %}
{%- set toast_columns = entry.warehouse_toasted %}
with

changes as (
    select * from {{ ref(staging_model) }}
    where _op <> 't'
    {%- if is_incremental() %}
        and ({{ key }}) in (
            select {{ key }} from {{ ref(staging_model) }}
            where _lake_snapshot not in (select distinct _lake_snapshot from {{ this }})
        )
    {%- endif %}
),

{% if toast_columns %}
{#- A TOASTed column's placeholder takes the value of the last change that sent one (a real NULL included):
    each sent value starts a group, the placeholders after it join its group. #}
toast_grouped as (
    select
        *,
        {%- for column in toast_columns %}
        count(case when {{ column }} is distinct from {{ placeholder }} then 1 end) over (
            partition by {{ key }} order by _lsn, _kafka_offset rows between unbounded preceding and current row
        ) as _toast_group_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}
    from changes
),

toast_resolved as (
    select
        * exclude ({% for column in toast_columns %}_toast_group_{{ loop.index }}{{ ", " if not loop.last }}{% endfor %})
        replace (
            {%- for column in toast_columns %}
            nullif(first_value({{ column }}) over (
                partition by {{ key }}, _toast_group_{{ loop.index }} order by _lsn, _kafka_offset
            ), {{ placeholder }}) as {{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        )
    from toast_grouped
),
{% endif %}

{#- A snapshot's row ('r') that restates the version before it (an incremental snapshot reading a row whose
    insert or update was streamed already) is no version of its own. #}
hashed as (
    select *, hash(*columns(* exclude ({{ change_metadata() }}))) as _row_hash
    from {{ 'toast_resolved' if toast_columns else 'changes' }}
),

changed as (
    select * exclude (_row_hash)
    from hashed
    qualify not (_op = 'r' and _row_hash is not distinct from lag(_row_hash) over (
        partition by {{ key }} order by _lsn, _kafka_offset))
),

ordered as (
    select
        *,
        row_number() over (partition by {{ key }} order by _lsn, _kafka_offset) as version_number
    from changed
),

versioned as (
    select
        *,
        _source_ts as valid_from,
        lead(_source_ts) over (partition by {{ key }} order by version_number) as valid_to,
        _op = 'd' as is_deleted,
        version_number = max(version_number) over (partition by {{ key }}) as is_current,
        current_timestamp as _versioned_at
    from ordered
)

select * from versioned
{% endmacro %}

{#
  The latest version of every entity that still exists: the table as the source has it now. A TRUNCATE in
  the change log removes every row whose latest change came before it. A view where the versions are kept
  (it costs nothing to build and is never stale); a table where they are a view (`history: false`).
#}
{% macro current_state(source_name, table_name) %}
{%- set versions_model = 'int_' ~ table_name ~ '_versioned' %}
{%- set staging_model = 'stg_' ~ source_name ~ '__' ~ table_name %}
select * exclude (version_number, valid_from, valid_to, is_current, is_deleted, _loaded_at, _versioned_at)
from {{ ref(versions_model) }}
where is_current
    and not is_deleted
    and _lsn > coalesce((select max(_lsn) from {{ ref(staging_model) }} where _op = 't'), -1)
{% endmacro %}

{#
  The rows of `relation` with the key of the `dimension` version valid at `at_column`: the latest version
  that began by then. A row older than the first version (its own transaction's start time can precede the
  dimension's commit time) gets the first version.
#}
{% macro with_version_valid_at(relation, dimension, id_column, key_column, at_column) %}
    select
        {{ relation }}.*,
        coalesce({{ dimension }}.{{ key_column }}, md5({{ relation }}.{{ id_column }} || ':1')) as {{ key_column }}
    from {{ relation }}
    asof left join {{ dimension }}
        on {{ relation }}.{{ id_column }} = {{ dimension }}.{{ id_column }}
        and {{ relation }}.{{ at_column }} >= {{ dimension }}.valid_from
{% endmacro %}
