{{ current_state('int_customers_versioned') }}
