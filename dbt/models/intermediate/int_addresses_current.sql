{{ current_state('int_addresses_versioned', 'stg_shop__addresses') }}
