{{ entity_versions('stg_shop__customers', 'customer_id') }}
