{{ current_state('int_payments_versioned', 'stg_shop__payments') }}
