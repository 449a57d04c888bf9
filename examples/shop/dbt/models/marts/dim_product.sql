{{ dimension_config('product_id') }}

with

product_versions as (
    select * from {{ ref('int_products_versioned') }}
    {{ versions_since_last_build() }}
),

final as (
    select
        -- ids
        md5(product_id || ':' || version_number) as product_key,
        product_id,
        version_number,
        -- strings
        sku,
        product_name,
        product_category,
        -- numerics
        price_amount,
        price_amount_special,
        weight_grams,
        -- booleans
        is_active,
        is_current,
        is_deleted,
        -- timestamps
        created_at,
        valid_from,
        coalesce(valid_to, timestamptz '9999-12-31 00:00:00+00') as valid_to,
        -- change
        _versioned_at
    from product_versions
)

select * from final
