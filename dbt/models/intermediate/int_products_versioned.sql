{{ entity_versions('stg_shop__products', 'product_id', toast_columns=['product_description']) }}
