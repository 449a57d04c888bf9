{{ current_state('int_payments_versioned') }}
