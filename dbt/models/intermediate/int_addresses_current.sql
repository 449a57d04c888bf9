{{ current_state('int_addresses_versioned') }}
