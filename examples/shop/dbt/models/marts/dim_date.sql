with

order_dates as (
    select min(placed_at)::date as first_date from {{ ref('int_orders_current') }}
),

days as (
    select unnest(generate_series(
        coalesce((select first_date from order_dates), current_date) - interval 30 day,
        current_date + interval 365 day,
        interval 1 day
    ))::date as date_day
),

final as (
    select
        cast(strftime(date_day, '%Y%m%d') as integer) as date_key,
        date_day,
        year(date_day) as year_number,
        month(date_day) as month_number,
        day(date_day) as day_of_month,
        isodow(date_day) as iso_day_of_week,
        strftime(date_day, '%A') as day_name,
        isodow(date_day) in (6, 7) as is_weekend
    from days
)

select * from final
