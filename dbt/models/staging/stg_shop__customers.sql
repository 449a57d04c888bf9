with

source as (
    {{ deduplicated_changes(source('lake', 'customers'), 'customer_id') }}
),

renamed as (
    select
        -- ids
        customer_id,
        -- strings
        email,
        full_name,
        phone,
        preferences as preferences_json,
        -- booleans
        marketing_opt_in as is_marketing_opt_in,
        -- dates
        birth_date,
        -- timestamps
        created_at,
        updated_at,
        -- change
        {{ change_columns() }}
    from source
)

select * from renamed
