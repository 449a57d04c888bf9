{{ entity_versions('stg_shop__orders', 'order_id') }}
