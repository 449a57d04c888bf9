with

orders as (
    select * from {{ ref('fct_orders') }}
),

customers as (
    select * from {{ ref('dim_customer') }} where is_current
),

order_value as (
    select
        customer_id,
        count(*) filter (where not is_cancelled) as order_count,
        sum(order_total_amount) filter (where not is_cancelled) as lifetime_value_amount,
        min(placed_at) as first_order_at,
        max(placed_at) as last_order_at
    from orders
    group by customer_id
),

final as (
    select
        order_value.customer_id,
        customers.full_name,
        customers.email,
        order_value.order_count,
        coalesce(order_value.lifetime_value_amount, 0) as lifetime_value_amount,
        order_value.first_order_at,
        order_value.last_order_at
    from order_value
    left join customers on order_value.customer_id = customers.customer_id
)

select * from final
