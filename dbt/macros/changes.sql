{#
  The change log of one shop table, each change once:
  1. exact duplicates of one Kafka record (the same topic, partition and offset landed twice) are removed;
  2. Debezium re-deliveries of the same change (after a connector restart the same LSN, key and operation
     come again at new offsets) collapse to the first delivery.
#}
{% macro deduplicated_changes(source_relation, key_column) %}
    select *
    from (
        select *
        from {{ source_relation }}
        qualify row_number() over (
            partition by _kafka_topic, _kafka_partition, _kafka_offset order by _ingested_at
        ) = 1
    ) as each_record_once
    {#- In sequence, not in one qualify: both windows over the same rows could each keep another copy. #}
    qualify row_number() over (
        partition by {{ key_column }}, _lsn, _op order by _kafka_partition, _kafka_offset
    ) = 1
{% endmacro %}

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
        _ingested_at
{% endmacro %}
