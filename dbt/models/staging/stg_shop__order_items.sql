with

source as (
    {{ deduplicated_changes(source('lake', 'order_items'), 'order_item_id') }}
),

renamed as (
    select
        -- ids
        order_item_id,
        order_id,
        product_id,
        -- numerics
        quantity,
        unit_price as unit_price_amount,
        discount_amount,
        -- NUMERIC's NaN / Infinity / -Infinity, where the amount beside it is null (docs/lake.md)
        unit_price__special as unit_price_amount_special,
        discount_amount__special as discount_amount_special,
        -- timestamps
        created_at,
        -- change
        {{ change_columns() }}
    from source
)

select * from renamed
