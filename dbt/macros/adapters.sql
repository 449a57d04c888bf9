{#
  A column whose type widened (on_schema_change: sync_all_columns; docs/tables.md) changes type in place: dbt's
  default adds a column, copies, drops and renames, which DuckDB refuses to commit with the insert that follows
  ("another transaction has altered this table").
#}
{% macro duckdb__alter_column_type(relation, column_name, new_column_type) -%}
    {% call statement('alter_column_type') %}
        alter table {{ relation.render() }} alter column {{ adapter.quote(column_name) }} type {{ new_column_type }}
    {% endcall %}
{%- endmacro %}
