{{ entity_versions('stg_shop__payments', 'payment_id') }}
