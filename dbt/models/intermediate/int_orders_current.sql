{{ current_state('int_orders_versioned', 'stg_shop__orders') }}
