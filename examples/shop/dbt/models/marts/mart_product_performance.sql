with

order_items as (
    select * from {{ ref('fct_order_items') }}
),

products as (
    select * from {{ ref('dim_product') }} where is_current
),

sales as (
    select
        product_id,
        count(distinct order_id) as order_count,
        sum(quantity) as units_sold,
        sum(net_amount) as net_revenue_amount
    from order_items
    group by product_id
),

final as (
    select
        sales.product_id,
        products.sku,
        products.product_name,
        products.product_category,
        products.price_amount as current_price_amount,
        sales.order_count,
        sales.units_sold,
        sales.net_revenue_amount
    from sales
    left join products on sales.product_id = products.product_id
)

select * from final
