{{ current_state('int_order_items_versioned') }}
