-- mart_daily_sales_by_currency, converted order by order, adds up to mart_daily_sales
-- it reads several models: Dagster shows it as a check of mart_daily_sales_by_currency, and runs it as one
{{ config(meta={'dagster': {'ref': {'name': 'mart_daily_sales_by_currency'}}}) }}

with

by_currency as (
    select
        sum(orders) as orders,
        sum(refunded_orders) as refunded_orders
    from {{ ref('mart_daily_sales_by_currency') }}
),

daily as (
    select
        sum(orders) as orders,
        sum(refunded_orders) as refunded_orders
    from {{ ref('mart_daily_sales') }}
)

select *
from by_currency
cross join daily
where
    coalesce(by_currency.orders, 0) != coalesce(daily.orders, 0)
    or coalesce(by_currency.refunded_orders, 0) != coalesce(daily.refunded_orders, 0)
