{{ dimension_config('customer_id') }}

with

customer_versions as (
    select * from {{ ref('int_customers_versioned') }}
    {{ versions_since_last_build() }}
),

final as (
    select
        -- ids
        md5(customer_id || ':' || version_number) as customer_key,
        customer_id,
        version_number,
        -- strings
        email,
        full_name,
        phone,
        preferences_json,
        -- booleans
        is_marketing_opt_in,
        is_current,
        is_deleted,
        -- dates
        birth_date,
        -- timestamps
        created_at,
        valid_from,
        coalesce(valid_to, timestamptz '9999-12-31 00:00:00+00') as valid_to,
        -- change
        _versioned_at
    from customer_versions
)

select * from final
