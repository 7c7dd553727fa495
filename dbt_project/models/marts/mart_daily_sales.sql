{{
    config(
        partition_by=bq_partition_by('sales_date'),
    )
}}

with

orders as (
    select * from {{ ref('fct_orders') }}
),

bounds as (
    select
        min(least(order_date, coalesce(refund_date, order_date))) as first_date,
        max(greatest(order_date, coalesce(refund_date, order_date))) as last_date
    from orders
),

calendar as (
    {{ date_spine_between('bounds', 'first_date', 'last_date') }}
),

sales as (
    select
        order_date as sales_date,
        count(case when is_paid then 1 end) as orders,
        sum(case when is_paid then total_amount end) as gross_revenue,
        cast(sum(case when is_paid then items end) as {{ dbt.type_bigint() }}) as items_sold,
        count(distinct case when is_paid then user_id end) as customers,
        count(case when status = 'cancelled' then 1 end) as cancelled_orders
    from orders
    group by order_date
),

refunds as (
    select
        refund_date as sales_date,
        count(*) as refunded_orders,
        sum(total_amount) as refunds
    from orders
    where refund_date is not null
    group by refund_date
),

daily as (
    select
        calendar.date_day as sales_date,
        coalesce(sales.orders, 0) as orders,
        coalesce(sales.gross_revenue, 0) as gross_revenue,
        coalesce(sales.items_sold, 0) as items_sold,
        coalesce(sales.customers, 0) as customers,
        coalesce(refunds.refunded_orders, 0) as refunded_orders,
        coalesce(refunds.refunds, 0) as refunds,
        coalesce(sales.cancelled_orders, 0) as cancelled_orders
    from calendar
    left join sales
        on calendar.date_day = sales.sales_date
    left join refunds
        on calendar.date_day = refunds.sales_date
)

select
    sales_date,
    orders,
    gross_revenue,
    items_sold,
    customers,
    cast(round({{ safe_divide('gross_revenue', 'orders') }}, 2) as {{ dbt.type_numeric() }}) as average_order_value,
    refunded_orders,
    refunds,
    gross_revenue - refunds as net_revenue,
    cancelled_orders
from daily
