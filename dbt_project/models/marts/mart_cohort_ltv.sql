{{
    config(
        partition_by=bq_partition_by('signup_month'),
    )
}}

-- Revenue and lifetime value of sign-up cohorts by month: a cohort is the current users who
-- signed up in one calendar month, from the first day with orders on; each month since
-- sign-up (up to the month of the latest order placed) shows the cohort's net revenue in
-- USD (sales that month less refunds that month), the running total, and LTV = running
-- total / cohort users.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

bounds as (
    select
        min(order_date) as first_date,
        max(order_date) as as_of_date
    from orders
),

cohorts as (
    select
        signups.user_id,
        {{ month_start('cast(signups.created_at as date)') }} as signup_month
    from {{ ref('stg_users') }} as signups
    cross join bounds
    where cast(signups.created_at as date) between bounds.first_date and bounds.as_of_date
),

cohort_sizes as (
    select
        signup_month,
        count(*) as cohort_users
    from cohorts
    group by signup_month
),

cohort_bounds as (
    select
        min(cohorts.signup_month) as first_month,
        {{ month_start('max(bounds.as_of_date)') }} as last_month
    from cohorts
    cross join bounds
),

month_calendar as (
    {{ date_spine_between('cohort_bounds', 'first_month', 'last_month', 'month') }}
),

grid as (
    select
        cohort_sizes.signup_month,
        cohort_sizes.cohort_users,
        month_calendar.date_day as activity_month
    from cohort_sizes
    inner join month_calendar
        on cohort_sizes.signup_month <= month_calendar.date_day
),

-- a sale adds to the month it was made in, its refund takes it back in the refund's month
movements as (
    select
        user_id,
        {{ month_start('sale_date') }} as activity_month,
        user_id as customer_id,
        total_amount_usd as amount
    from orders
    where is_sale
    union all
    select
        user_id,
        {{ month_start('refund_date') }} as activity_month,
        cast(null as {{ dbt.type_bigint() }}) as customer_id,
        -total_amount_usd as amount
    from orders
    where is_refunded
),

cohort_months as (
    select
        cohorts.signup_month,
        movements.activity_month,
        count(distinct movements.customer_id) as customers,
        sum(movements.amount) as net_revenue
    from movements
    inner join cohorts
        on movements.user_id = cohorts.user_id
    group by cohorts.signup_month, movements.activity_month
),

monthly as (
    select
        grid.signup_month,
        grid.activity_month,
        grid.cohort_users,
        coalesce(cohort_months.customers, 0) as customers,
        coalesce(cohort_months.net_revenue, 0) as net_revenue,
        sum(coalesce(cohort_months.net_revenue, 0)) over (
            partition by grid.signup_month
            order by grid.activity_month
            rows between unbounded preceding and current row
        ) as cumulative_net_revenue
    from grid
    left join cohort_months
        on
            grid.signup_month = cohort_months.signup_month
            and grid.activity_month = cohort_months.activity_month
)

select
    signup_month,
    cast({{ months_between('signup_month', 'activity_month') }} as {{ dbt.type_bigint() }}) as months_since_signup,
    activity_month,
    cast(cohort_users as {{ dbt.type_bigint() }}) as cohort_users,
    cast(customers as {{ dbt.type_bigint() }}) as customers,
    {{ to_money('net_revenue') }} as net_revenue,
    {{ to_money('cumulative_net_revenue') }} as cumulative_net_revenue,
    {{ divide_money('cumulative_net_revenue', 'cohort_users') }} as lifetime_value
from monthly
