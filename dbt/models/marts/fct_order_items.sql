{{ fact_config() }}

with

order_items as (
    select * from {{ ref('int_order_items_current') }}
),

orders as (
    select * from {{ ref('int_orders_current') }}
),

products as (
    select * from {{ ref('dim_product') }}
),

customers as (
    select * from {{ ref('dim_customer') }}
),

items_with_orders as (
    select
        order_items.*,
        orders.customer_id,
        orders.order_status,
        orders.placed_at
    from order_items
    inner join orders on order_items.order_id = orders.order_id
),

-- The dimension versions valid when the order was placed.
with_product as (
    {{ with_version_valid_at('items_with_orders', 'products', 'product_id', 'product_key', 'placed_at') }}
),

with_customer as (
    {{ with_version_valid_at('with_product', 'customers', 'customer_id', 'customer_key', 'placed_at') }}
),

final as (
    select
        -- ids
        order_item_id,
        order_id,
        product_id,
        customer_id,
        product_key,
        customer_key,
        cast(strftime(placed_at, '%Y%m%d') as integer) as order_date_key,
        -- strings
        order_status,
        -- numerics
        quantity,
        unit_price_amount,
        discount_amount,
        quantity * unit_price_amount as gross_amount,
        quantity * unit_price_amount - discount_amount as net_amount,
        -- timestamps
        placed_at
    from with_customer
    where {{ in_rebuild_interval('placed_at') }}
)

select * from final
