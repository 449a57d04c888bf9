with

source as (
    {{ deduplicated_changes(source('lake', 'orders'), 'order_id') }}
),

renamed as (
    select
        -- ids
        order_id,
        customer_id,
        shipping_address_id,
        -- strings
        status as order_status,
        currency as currency_code,
        -- numerics
        total_amount as order_total_amount,
        total_amount__special as order_total_amount_special,  -- NaN where the amount is null (docs/lake.md)
        -- timestamps
        placed_at,
        paid_at,
        shipped_at,
        cancelled_at,
        updated_at,
        -- change
        {{ change_columns() }}
    from source
)

select * from renamed
