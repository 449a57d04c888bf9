with

source as (
    {{ deduplicated_changes(source('lake', 'products'), 'product_id') }}
),

renamed as (
    select
        -- ids
        product_id,
        -- strings
        sku,
        product_name,
        category as product_category,
        description as product_description,  -- '__debezium_unavailable_value' when unchanged (TOAST)
        attributes as attributes_json,
        -- numerics
        price as price_amount,
        price__special as price_amount_special,  -- NaN where the price is null (docs/lake.md)
        weight_grams,
        -- booleans
        is_active,
        -- timestamps
        created_at,
        updated_at,
        -- change
        {{ change_columns() }}
    from source
)

select * from renamed
