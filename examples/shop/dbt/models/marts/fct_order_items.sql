{{ fact_config() }}
-- depends_on: {{ ref('int_orders_versioned') }}, {{ ref('int_order_items_versioned') }} (what changed)

with

order_items as (
    select * from {{ ref('int_order_items_current') }}
),

orders as (
    select * from {{ ref('int_orders_current') }}
    where {{ fact_rebuild_scope('order_id', 'placed_at') }}
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
        placed_at,
        -- change
        current_timestamp as _built_at  -- the build that wrote the row: scopes its tests (tests.sql)
    from with_customer
)

select * from final
