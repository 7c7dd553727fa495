{{
    config(
        partition_by=bq_partition_by('sales_date'),
    )
}}

-- Sales per UTC day in USD: a sale counts on the day its payment succeeded, a refund on
-- the day it was made, a cancellation on the day the order was cancelled (fct_orders).
with

orders as (
    select * from {{ ref('fct_orders') }}
),

bounds as (
    select
        min(least(
            coalesce(sale_date, order_date), coalesce(refund_date, order_date), coalesce(cancel_date, order_date)
        )) as first_date,
        max(greatest(
            coalesce(sale_date, order_date), coalesce(refund_date, order_date), coalesce(cancel_date, order_date)
        )) as last_date
    from orders
    where is_sale or is_refunded or is_cancelled
),

calendar as (
    {{ date_spine_between('bounds', 'first_date', 'last_date') }}
),

sales as (
    select
        sale_date,
        count(*) as orders,
        sum(total_amount_usd) as gross_revenue,
        sum(items) as items_sold,
        count(distinct user_id) as customers
    from orders
    where is_sale
    group by sale_date
),

refunds as (
    select
        refund_date,
        count(*) as refunded_orders,
        sum(total_amount_usd) as refunds
    from orders
    where is_refunded
    group by refund_date
),

cancellations as (
    select
        cancel_date,
        count(*) as cancelled_orders
    from orders
    where is_cancelled
    group by cancel_date
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
        coalesce(cancellations.cancelled_orders, 0) as cancelled_orders
    from calendar
    left join sales
        on calendar.date_day = sales.sale_date
    left join refunds
        on calendar.date_day = refunds.refund_date
    left join cancellations
        on calendar.date_day = cancellations.cancel_date
)

select
    sales_date,
    cast(orders as {{ dbt.type_bigint() }}) as orders,
    {{ to_money('gross_revenue') }} as gross_revenue,
    cast(items_sold as {{ dbt.type_bigint() }}) as items_sold,
    cast(customers as {{ dbt.type_bigint() }}) as customers,
    {{ divide_money('gross_revenue', 'orders') }} as average_order_value,
    cast(refunded_orders as {{ dbt.type_bigint() }}) as refunded_orders,
    {{ to_money('refunds') }} as refunds,
    {{ to_money('gross_revenue - refunds') }} as net_revenue,
    cast(cancelled_orders as {{ dbt.type_bigint() }}) as cancelled_orders
from daily
