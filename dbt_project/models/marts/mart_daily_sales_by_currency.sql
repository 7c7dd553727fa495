{{
    config(
        partition_by=bq_partition_by('sales_date'),
    )
}}

-- Sales per UTC day and currency, in that currency (never added across currencies): the
-- same recognition as mart_daily_sales. One row per day and currency with a sale or refund.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

sales as (
    select
        sale_date as sales_date,
        currency,
        count(*) as orders,
        sum(total_amount) as gross_revenue
    from orders
    where is_sale
    group by sale_date, currency
),

refunds as (
    select
        refund_date as sales_date,
        currency,
        count(*) as refunded_orders,
        sum(total_amount) as refunds
    from orders
    where is_refunded
    group by refund_date, currency
),

daily as (
    select
        coalesce(sales.sales_date, refunds.sales_date) as sales_date,
        coalesce(sales.currency, refunds.currency) as currency,
        coalesce(sales.orders, 0) as orders,
        coalesce(sales.gross_revenue, 0) as gross_revenue,
        coalesce(refunds.refunded_orders, 0) as refunded_orders,
        coalesce(refunds.refunds, 0) as refunds
    from sales
    full outer join refunds
        on
            sales.sales_date = refunds.sales_date
            and sales.currency = refunds.currency
)

select
    sales_date,
    currency,
    cast(orders as {{ dbt.type_bigint() }}) as orders,
    {{ to_money('gross_revenue') }} as gross_revenue,
    cast(refunded_orders as {{ dbt.type_bigint() }}) as refunded_orders,
    {{ to_money('refunds') }} as refunds,
    {{ to_money('gross_revenue - refunds') }} as net_revenue
from daily
