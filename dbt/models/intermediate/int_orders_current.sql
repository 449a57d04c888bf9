{{ current_state('int_orders_versioned') }}
