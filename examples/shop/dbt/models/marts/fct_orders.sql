-- An accumulating snapshot: one row per order, its milestones filled in as the order moves on.
{{ fact_config() }}
-- depends_on: {{ ref('int_order_items_versioned') }}, {{ ref('dim_product') }} (what changed)

with

orders as (
    select * from {{ ref('int_orders_current') }}
    where {{ fact_rebuild_scope('order_id', 'placed_at') }}
),

order_versions as (
    select * from {{ ref('int_orders_versioned') }}
),

order_items as (
    select * from {{ ref('fct_order_items') }}
),

customers as (
    select * from {{ ref('dim_customer') }}
),

milestones as (
    -- When each status was first seen in the change history.
    select
        order_id,
        min(valid_from) filter (where order_status = 'paid') as paid_seen_at,
        min(valid_from) filter (where order_status = 'shipped') as shipped_seen_at,
        min(valid_from) filter (where order_status = 'cancelled') as cancelled_seen_at,
        count(*) as change_count
    from order_versions
    where order_id in (select order_id from orders)
    group by order_id
),

item_totals as (
    select order_id, count(*) as item_count, sum(quantity) as unit_count, sum(net_amount) as items_net_amount
    from order_items
    where order_id in (select order_id from orders)
    group by order_id
),

with_customer as (
    {{ with_version_valid_at('orders', 'customers', 'customer_id', 'customer_key', 'placed_at') }}
),

final as (
    select
        -- ids
        with_customer.order_id,
        with_customer.customer_id,
        with_customer.customer_key,
        cast(strftime(placed_at, '%Y%m%d') as integer) as order_date_key,
        -- strings
        order_status,
        currency_code,
        -- numerics
        order_total_amount,
        coalesce(item_totals.item_count, 0) as item_count,
        coalesce(item_totals.unit_count, 0) as unit_count,
        milestones.change_count,
        -- booleans
        order_status = 'cancelled' as is_cancelled,
        -- timestamps
        placed_at,
        coalesce(paid_at, milestones.paid_seen_at) as paid_at,
        coalesce(shipped_at, milestones.shipped_seen_at) as shipped_at,
        coalesce(cancelled_at, milestones.cancelled_seen_at) as cancelled_at,
        -- change
        current_timestamp as _built_at  -- the build that wrote the row: scopes its tests (tests.sql)
    from with_customer
    left join milestones on with_customer.order_id = milestones.order_id
    left join item_totals on with_customer.order_id = item_totals.order_id
)

select * from final
