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

-- The dimension versions valid when the order was placed (the latest version that began by then).
with_product as (
    select items_with_orders.*, products.product_key
    from items_with_orders
    asof left join products
        on items_with_orders.product_id = products.product_id
        and items_with_orders.placed_at >= products.valid_from
),

with_customer as (
    select with_product.*, customers.customer_key
    from with_product
    asof left join customers
        on with_product.customer_id = customers.customer_id
        and with_product.placed_at >= customers.valid_from
),

final as (
    select
        -- ids
        order_item_id,
        order_id,
        product_id,
        customer_id,
        coalesce(product_key, md5(product_id || ':1')) as product_key,
        coalesce(customer_key, md5(customer_id || ':1')) as customer_key,
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
)

select * from final
