{{ entity_versions('stg_shop__addresses', 'address_id') }}
