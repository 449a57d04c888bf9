{{ current_state('int_products_versioned', 'stg_shop__products') }}
