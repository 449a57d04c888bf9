with

product_versions as (
    select * from {{ ref('int_products_versioned') }}
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
        weight_grams,
        -- booleans
        is_active,
        is_current,
        is_deleted,
        -- timestamps
        created_at,
        valid_from,
        coalesce(valid_to, timestamptz '9999-12-31 00:00:00+00') as valid_to
    from product_versions
)

select * from final
