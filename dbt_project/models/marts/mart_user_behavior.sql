with

users as (
    select * from {{ ref('stg_users') }}
),

user_sessions as (
    select
        {{ dbt.safe_cast('user_id', dbt.type_bigint()) }} as user_id,
        count(*) as sessions,
        min(session_start) as first_seen_at,
        max(session_end) as last_seen_at
    from {{ ref('int_sessions') }}
    where user_id is not null
    group by {{ dbt.safe_cast('user_id', dbt.type_bigint()) }}
),

paid_orders as (
    select
        user_id,
        count(*) as orders,
        sum(total_amount) as lifetime_revenue,
        min(created_at) as first_order_at,
        max(created_at) as last_order_at
    from {{ ref('fct_orders') }}
    where is_paid
    group by user_id
),

-- recency is measured against the latest day with behaviour data, not the wall clock
as_of as (
    select max(event_date) as as_of_date
    from {{ ref('stg_events') }}
),

behavior as (
    select
        users.user_id,
        users.country,
        users.created_at as signed_up_at,
        user_sessions.first_seen_at,
        user_sessions.last_seen_at,
        coalesce(user_sessions.sessions, 0) as sessions,
        coalesce(paid_orders.orders, 0) as orders,
        coalesce(paid_orders.lifetime_revenue, 0) as lifetime_revenue,
        paid_orders.first_order_at,
        paid_orders.last_order_at,
        {{ dbt.datediff('cast(paid_orders.last_order_at as date)', 'as_of.as_of_date', 'day') }} as recency_days
    from users
    cross join as_of
    left join user_sessions
        on users.user_id = user_sessions.user_id
    left join paid_orders
        on users.user_id = paid_orders.user_id
)

select
    user_id,
    country,
    signed_up_at,
    first_seen_at,
    last_seen_at,
    sessions,
    orders,
    lifetime_revenue,
    first_order_at,
    last_order_at,
    recency_days,
    orders as frequency,
    cast(round({{ safe_divide('lifetime_revenue', 'orders') }}, 2) as {{ dbt.type_numeric() }}) as average_order_value,
    case
        when orders = 0 then 'prospect'
        when orders >= 3 and recency_days <= 14 then 'champion'
        when orders >= 2 and recency_days <= 30 then 'loyal'
        when orders = 1 and recency_days <= 14 then 'new'
        else 'at_risk'
    end as segment
from behavior
