-- Customer segments: size, value (USD, kept orders) and activity of each RFM segment
-- (mart_user_behavior).
with

users as (
    select * from {{ ref('mart_user_behavior') }}
),

segments as (
    select
        segment,
        count(*) as user_count,
        sum(sessions) as sessions,
        sum(orders) as orders,
        sum(lifetime_revenue) as revenue,
        avg(recency_days) as avg_recency_days
    from users
    group by segment
),

totals as (
    select
        count(*) as user_count,
        sum(lifetime_revenue) as revenue
    from users
)

select
    segments.segment,
    segments.user_count,
    {{ safe_divide('segments.user_count', 'totals.user_count') }} as share_of_users,
    segments.sessions,
    segments.orders,
    segments.revenue,
    {{ safe_divide('segments.revenue', 'totals.revenue') }} as share_of_revenue,
    {{ safe_divide('segments.orders', 'segments.user_count') }} as orders_per_user,
    {{ divide_money('segments.revenue', 'segments.orders') }} as average_order_value,
    segments.avg_recency_days
from segments
cross join totals
order by segments.revenue desc
