-- One row per current user: activity (int_sessions of the user), kept orders (sales not
-- refunded) in USD, and an RFM segment. Recency is measured against the order data's as-of
-- date (the day of the latest order placed), which behaviour events cannot move.
with

users as (
    select * from {{ ref('stg_users') }}
),

user_sessions as (
    select
        user_id,
        count(*) as sessions,
        min(session_start) as first_seen_at,
        max(session_end) as last_seen_at
    from {{ ref('int_sessions') }}
    where user_id is not null
    group by user_id
),

orders as (
    select * from {{ ref('fct_orders') }}
),

kept_orders as (
    select
        user_id,
        count(case when not is_refunded then 1 end) as orders,
        count(case when is_refunded then 1 end) as refunded_orders,
        coalesce(sum(case when not is_refunded then total_amount_usd end), 0) as lifetime_revenue,
        min(case when not is_refunded then created_at end) as first_order_at,
        max(case when not is_refunded then created_at end) as last_order_at
    from orders
    where is_sale
    group by user_id
),

as_of as (
    select max(order_date) as as_of_date
    from orders
),

behavior as (
    select
        users.user_id,
        users.country,
        users.created_at as signed_up_at,
        user_sessions.first_seen_at,
        user_sessions.last_seen_at,
        coalesce(user_sessions.sessions, 0) as sessions,
        coalesce(kept_orders.orders, 0) as orders,
        coalesce(kept_orders.refunded_orders, 0) as refunded_orders,
        coalesce(kept_orders.lifetime_revenue, 0) as lifetime_revenue,
        kept_orders.first_order_at,
        kept_orders.last_order_at,
        {{ days_between('cast(kept_orders.last_order_at as date)', 'as_of.as_of_date') }} as recency_days
    from users
    cross join as_of
    left join user_sessions
        on users.user_id = user_sessions.user_id
    left join kept_orders
        on users.user_id = kept_orders.user_id
)

select
    user_id,
    country,
    signed_up_at,
    first_seen_at,
    last_seen_at,
    cast(sessions as {{ dbt.type_bigint() }}) as sessions,
    cast(orders as {{ dbt.type_bigint() }}) as orders,
    cast(refunded_orders as {{ dbt.type_bigint() }}) as refunded_orders,
    {{ to_money('lifetime_revenue') }} as lifetime_revenue,
    first_order_at,
    last_order_at,
    cast(recency_days as {{ dbt.type_bigint() }}) as recency_days,
    cast(orders as {{ dbt.type_bigint() }}) as frequency,
    {{ divide_money('lifetime_revenue', 'orders') }} as average_order_value,
    case
        when orders = 0 then 'prospect'
        when orders >= 3 and recency_days <= 14 then 'champion'
        when orders >= 2 and recency_days <= 30 then 'loyal'
        when orders = 1 and recency_days <= 14 then 'new'
        else 'at_risk'
    end as segment
from behavior
