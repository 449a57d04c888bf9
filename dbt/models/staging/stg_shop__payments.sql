with

source as (
    {{ deduplicated_changes(source('lake', 'payments'), 'payment_id') }}
),

renamed as (
    select
        -- ids
        payment_id,
        order_id,
        provider_reference as provider_reference_id,
        -- strings
        payment_method,
        status as payment_status,
        -- numerics
        amount as payment_amount,
        amount__special as payment_amount_special,  -- NaN where the amount is null (docs/lake.md)
        -- timestamps
        created_at,
        -- change
        {{ change_columns() }}
    from source
)

select * from renamed
