{{ current_state('int_products_versioned') }}
