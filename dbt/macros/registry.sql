{#
  The table registry (models/staging/__sources.yml, `config.meta.tidewater` of each source table; read by
  tidewater.tables on the Python side): what a staging, versions or current-state model of a table needs.
  Those models are one line each, written by `tidewater tables sync` (docs/tables.md).

  registry_entry(source, table) → primary_key, toasted, renamed (PostgreSQL names) and warehouse_key,
  warehouse_toasted (their warehouse names). While dbt parses (no graph yet) it gives a placeholder key.
#}
{% macro registry_entry(source_name, table_name) %}
    {%- if not execute %}
        {{ return({'primary_key': ['_key'], 'toasted': [], 'renamed': {}, 'warehouse_key': ['_key'],
                   'warehouse_toasted': []}) }}
    {%- endif %}
    {%- for node in graph.sources.values() if node.source_name == source_name and node.name == table_name %}
        {%- set meta = (node.config.meta if node.config and node.config.meta else node.meta).get('tidewater', {}) %}
        {%- set renamed = meta.get('renamed', {}) %}
        {%- set entry = {'primary_key': meta.primary_key, 'toasted': meta.get('toasted', []), 'renamed': renamed} %}
        {%- set warehouse = {'warehouse_key': [], 'warehouse_toasted': []} %}
        {%- for column in entry.primary_key %}{% do warehouse.warehouse_key.append(renamed.get(column, column)) %}{% endfor %}
        {%- for column in entry.toasted %}{% do warehouse.warehouse_toasted.append(renamed.get(column, column)) %}{% endfor %}
        {%- do entry.update(warehouse) %}
        {{ return(entry) }}
    {%- endfor %}
    {{ exceptions.raise_compiler_error(
        "source " ~ source_name ~ "." ~ table_name ~ " is not in the table registry (models/staging/__sources.yml): "
        ~ "add it there, or run `tidewater tables sync` to remove the models of a table taken out of it") }}
{% endmacro %}

{#
  The staging model of a source table: its changes, each once (deduplicated_changes), every column of the lake's
  change table under its warehouse name (the registry's `renamed`; NUMERIC's `<column>__special` companion
  becomes `<warehouse column>_special`), then the change metadata (change_columns). A column added to the
  table mid-stream appears at the next build (on_schema_change: sync_all_columns, which also widens a column
  whose type widened). Lake columns with one warehouse name (a column renamed in PostgreSQL, declared
  `renamed: {new: old}`) become one column: the newest lake column's value, else the older one's.
#}
{% macro staged_changes(source_name, table_name) %}
{%- set entry = registry_entry(source_name, table_name) %}
{%- set relation = source(source_name, table_name) %}
{%- set metadata = ['_op', '_source_ts', '_lsn', '_tx_id', '_kafka_topic', '_kafka_partition', '_kafka_offset',
                    '_ingested_at'] %}
{%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list if execute else [] %}
{%- set named = {} %}
{%- for column in columns if column not in metadata %}
    {%- if column.endswith('__special') %}
        {%- set base = column[:-9] %}
        {%- set name = entry.renamed.get(base, base) ~ '_special' %}
    {%- else %}
        {%- set name = entry.renamed.get(column, column) %}
    {%- endif %}
    {%- do named.setdefault(name, []).insert(0, adapter.quote(column) if column != column.lower() else column) %}
{%- endfor %}
with

source as (
    {{ deduplicated_changes(relation, entry.primary_key) }}
),

renamed as (
    select
        {%- for name, sources in named.items() %}
        {%- if sources | length > 1 %}
        coalesce({{ sources | join(', ') }}) as {{ name }},
        {%- else %}
        {{ sources[0] }}{{ ' as ' ~ name if name != sources[0] }},
        {%- endif %}
        {%- endfor %}
        {{ change_columns() }}
    from source
)

select * from renamed
{% endmacro %}
