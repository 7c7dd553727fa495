{{
    config(
        partition_by=bq_partition_by('sales_date'),
    )
}}

-- New and returning customers per UTC day, and the repeat-purchase rate so far. A customer
-- is a user with at least one sale (fct_orders.is_sale; a later refund does not undo that
-- the purchase was made); new on the day of their first sale in the data, returning after.
with

sales as (
    select
        user_id,
        order_id,
        sale_date,
        total_amount_usd,
        row_number() over (partition by user_id order by sold_at, order_id) as sale_number
    from {{ ref('fct_orders') }}
    where is_sale
),

customers as (
    select
        user_id,
        min(sale_date) as first_sale_date,
        min(case when sale_number = 2 then sale_date end) as second_sale_date
    from sales
    group by user_id
),

bounds as (
    select
        min(sale_date) as first_date,
        max(sale_date) as last_date
    from sales
),

calendar as (
    {{ date_spine_between('bounds', 'first_date', 'last_date') }}
),

daily as (
    select
        sales.sale_date,
        count(distinct sales.user_id) as customers,
        count(distinct case when customers.first_sale_date = sales.sale_date then sales.user_id end)
            as new_customers,
        sum(case when customers.first_sale_date = sales.sale_date then sales.total_amount_usd else 0 end)
            as new_customer_revenue,
        sum(case when customers.first_sale_date < sales.sale_date then sales.total_amount_usd else 0 end)
            as returning_customer_revenue
    from sales
    inner join customers
        on sales.user_id = customers.user_id
    group by sales.sale_date
),

to_date as (
    select
        calendar.date_day,
        count(distinct customers.user_id) as customers_to_date,
        count(distinct case when customers.second_sale_date <= calendar.date_day then customers.user_id end)
            as repeat_customers_to_date
    from calendar
    inner join customers
        on calendar.date_day >= customers.first_sale_date
    group by calendar.date_day
)

select
    calendar.date_day as sales_date,
    cast(coalesce(daily.customers, 0) as {{ dbt.type_bigint() }}) as customers,
    cast(coalesce(daily.new_customers, 0) as {{ dbt.type_bigint() }}) as new_customers,
    cast(coalesce(daily.customers, 0) - coalesce(daily.new_customers, 0) as {{ dbt.type_bigint() }})
        as returning_customers,
    {{ to_money('coalesce(daily.new_customer_revenue, 0)') }} as new_customer_revenue,
    {{ to_money('coalesce(daily.returning_customer_revenue, 0)') }} as returning_customer_revenue,
    cast(to_date.customers_to_date as {{ dbt.type_bigint() }}) as customers_to_date,
    cast(to_date.repeat_customers_to_date as {{ dbt.type_bigint() }}) as repeat_customers_to_date,
    {{ safe_divide('to_date.repeat_customers_to_date', 'to_date.customers_to_date') }} as repeat_purchase_rate
from calendar
inner join to_date
    on calendar.date_day = to_date.date_day
left join daily
    on calendar.date_day = daily.sale_date
