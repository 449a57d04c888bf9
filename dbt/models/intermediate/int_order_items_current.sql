{{ current_state('int_order_items_versioned', 'stg_shop__order_items') }}
