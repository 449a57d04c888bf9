with

source as (
    {{ deduplicated_changes(source('lake', 'addresses'), 'address_id') }}
),

renamed as (
    select
        -- ids
        address_id,
        customer_id,
        -- strings
        address_type,
        line1 as address_line_1,
        line2 as address_line_2,
        city,
        postal_code,
        country_code,
        -- booleans
        is_default,
        -- timestamps
        created_at,
        updated_at,
        -- change
        {{ change_columns() }}
    from source
)

select * from renamed
