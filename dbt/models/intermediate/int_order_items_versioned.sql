{{ entity_versions('stg_shop__order_items', 'order_item_id') }}
