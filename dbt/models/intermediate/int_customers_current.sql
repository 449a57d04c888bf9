{{ current_state('int_customers_versioned', 'stg_shop__customers') }}
