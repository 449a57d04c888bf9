with

order_items as (
    select * from {{ ref('fct_order_items') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
),

dates as (
    select * from {{ ref('dim_date') }}
),

items_by_day as (
    select order_date_key, sum(quantity) as units_sold, sum(net_amount) as net_revenue_amount
    from order_items
    group by order_date_key
),

orders_by_day as (
    select
        order_date_key,
        count(*) as orders_placed,
        count(*) filter (where is_cancelled) as orders_cancelled
    from orders
    group by order_date_key
),

final as (
    select
        dates.date_day as sales_date,
        orders_by_day.orders_placed,
        orders_by_day.orders_cancelled,
        coalesce(items_by_day.units_sold, 0) as units_sold,
        coalesce(items_by_day.net_revenue_amount, 0) as net_revenue_amount
    from orders_by_day
    inner join dates on orders_by_day.order_date_key = dates.date_key
    left join items_by_day on orders_by_day.order_date_key = items_by_day.order_date_key
)

select * from final
