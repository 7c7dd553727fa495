-- mart_daily_sales adds up to fct_orders: sales and their USD revenue, refunds, cancellations
-- it reads several models: Dagster shows it as a check of mart_daily_sales, and runs it as one
{{ config(meta={'dagster': {'ref': {'name': 'mart_daily_sales'}}}) }}

with

sales as (
    select
        sum(orders) as orders,
        sum(gross_revenue) as gross_revenue,
        sum(refunded_orders) as refunded_orders,
        sum(refunds) as refunds,
        sum(cancelled_orders) as cancelled_orders
    from {{ ref('mart_daily_sales') }}
),

facts as (
    select
        count(case when is_sale then 1 end) as orders,
        coalesce(sum(case when is_sale then total_amount_usd end), 0) as gross_revenue,
        count(case when is_refunded then 1 end) as refunded_orders,
        coalesce(sum(case when is_refunded then total_amount_usd end), 0) as refunds,
        count(case when is_cancelled then 1 end) as cancelled_orders
    from {{ ref('fct_orders') }}
)

select
    sales.orders as mart_orders,
    facts.orders as fact_orders,
    sales.gross_revenue as mart_gross_revenue,
    facts.gross_revenue as fact_gross_revenue,
    sales.refunds as mart_refunds,
    facts.refunds as fact_refunds
from sales
cross join facts
where
    coalesce(sales.orders, 0) != facts.orders
    or coalesce(sales.gross_revenue, 0) != facts.gross_revenue
    or coalesce(sales.refunded_orders, 0) != facts.refunded_orders
    or coalesce(sales.refunds, 0) != facts.refunds
    or coalesce(sales.cancelled_orders, 0) != facts.cancelled_orders
