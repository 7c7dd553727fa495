"""Analyst queries against the marts, staging and raw, as people write them (not to fit the
rules): questions from a shop's week, with the habits that come with them."""

from __future__ import annotations

QUERIES: list[tuple[str, str]] = [
    (
        "daily_revenue_recent",
        """
select sales_date, orders, gross_revenue, refunds, net_revenue
from mart.mart_daily_sales
where sales_date >= '2026-11-14'
order by sales_date
""",
    ),
    (
        "top_products",
        """
select product_id, name, category, units_sold, revenue
from mart.mart_product_performance
order by revenue desc
limit 10
""",
    ),
    (
        "november_orders_by_status",
        """
select status, count(*) as orders, sum(total_amount) as revenue
from mart.fct_orders
where format_date('%Y-%m', order_date) = '2026-11'
group by status
""",
    ),
    (
        "conversion_by_device",
        """
select
  device_type,
  sum(sessions) as sessions,
  sum(order_sessions) as converted,
  safe_divide(sum(order_sessions), sum(sessions)) as conversion
from mart.mart_conversion_funnel
group by device_type
order by sessions desc
""",
    ),
    (
        "events_last_three_days",
        """
select event_name, count(*) as events
from staging.stg_events
where date_diff(date '2026-11-20', event_date, day) < 3
group by event_name
""",
    ),
    (
        "daily_visitors",
        """
select event_date, count(distinct anonymous_id) as visitors
from staging.stg_events
where event_date between '2026-11-10' and '2026-11-20'
group by event_date
order by event_date
""",
    ),
    (
        "orders_placed_on_the_19th",
        """
select order_id, user_id, status, total_amount
from mart.fct_orders
where created_at >= timestamp '2026-11-19 00:00:00'
  and created_at < timestamp '2026-11-20 00:00:00'
""",
    ),
    (
        "kpi_tiles_19th",
        """
select
  (select count(*) from mart.fct_orders where order_date = '2026-11-19') as orders,
  (select sum(total_amount) from mart.fct_orders where order_date = '2026-11-19') as revenue,
  (select count(*) from mart.fct_orders where order_date = '2026-11-19' and is_refunded) as refunds
""",
    ),
    (
        "revenue_share_by_country",
        """
with customers as (
  select * from mart.mart_user_behavior
),
by_country as (
  select country, count(*) as customers, sum(lifetime_revenue) as revenue
  from customers
  group by country
),
totals as (
  select count(*) as customers, sum(lifetime_revenue) as revenue from customers
)
select
  by_country.country,
  by_country.customers,
  by_country.revenue,
  by_country.revenue / totals.revenue as revenue_share
from by_country
cross join totals
order by by_country.revenue desc
""",
    ),
    (
        "abandoned_carts_by_source",
        """
select traffic_source, count(*) as abandoned_sessions
from staging.int_sessions
where session_date >= '2026-11-14'
  and has_add_to_cart and not has_order
group by traffic_source
order by abandoned_sessions desc
""",
    ),
    (
        "repeat_customers",
        """
select user_id, count(*) as orders, sum(total_amount) as spent
from mart.fct_orders
where is_paid
group by user_id
having count(*) > 1
order by orders desc
""",
    ),
    (
        "refunds_this_week",
        """
select refund_date, count(*) as refunds, sum(total_amount) as refunded
from mart.fct_orders
where refund_date between '2026-11-16' and '2026-11-22'
group by refund_date
""",
    ),
    (
        "views_by_category",
        """
select p.category, count(*) as product_views
from staging.stg_events e
join staging.stg_products p on p.product_id = safe_cast(e.product_id as int64)
where e.event_name = 'Product Viewed'
  and e.event_date >= '2026-11-14'
group by p.category
order by product_views desc
""",
    ),
    (
        "revenue_and_units_by_status",
        """
select o.status, sum(o.total_amount) as revenue, sum(i.quantity) as units
from mart.fct_orders o
join staging.stg_order_items i on i.order_id = o.order_id
where o.order_date >= '2026-11-14'
group by o.status
""",
    ),
    (
        "viewers_who_never_ordered",
        """
select user_id, email
from staging.stg_users
where cast(user_id as string) in (
    select user_id from staging.stg_events where event_name = 'Product Viewed'
  )
  and user_id not in (select user_id from mart.fct_orders)
""",
    ),
    (
        "november_sessions_by_source",
        """
select traffic_source, count(*) as sessions
from staging.int_sessions
where date_trunc(session_date, month) = '2026-11-01'
group by traffic_source
""",
    ),
    (
        "peek_at_todays_events",
        """
select *
from staging.stg_events
where event_date = '2026-11-20'
limit 100
""",
    ),
    (
        "dead_letters_today",
        """
select stage, error, count(*) as messages
from raw.events_dead_letter
where ingest_date = '2026-11-20'
group by stage, error
""",
    ),
    (
        "order_changes_by_operation",
        """
select op, count(*) as changes
from raw.cdc_orders
where ingest_date >= '2026-11-18'
group by op
""",
    ),
    (
        "weekly_average_order_value",
        """
select date_trunc(order_date, isoweek) as week, avg(total_amount) as aov
from mart.fct_orders
where is_paid
group by week
order by week
""",
    ),
    (
        "day_over_day_revenue",
        """
select today.sales_date, today.gross_revenue, yesterday.gross_revenue as previous_day
from mart.mart_daily_sales today
left join mart.mart_daily_sales yesterday
  on yesterday.sales_date = date_sub(today.sales_date, interval 1 day)
where today.sales_date >= '2026-11-15'
""",
    ),
    (
        "events_by_hour_today",
        """
select extract(hour from event_timestamp) as hour, count(*) as events
from staging.stg_events
where event_date = current_date()
group by hour
""",
    ),
    (
        "sample_of_users",
        """
select user_id, country, created_at
from staging.stg_users
where rand() < 0.1
""",
    ),
    (
        "retention_curve",
        """
select cohort_week, weeks_since_first, retention_rate
from mart.mart_retention_cohorts
order by cohort_week, weeks_since_first
""",
    ),
    (
        "orders_with_catalog",
        """
select o.order_id, p.name
from mart.fct_orders o, staging.stg_products p
where o.order_date = '2026-11-20' and p.category = 'electronics'
""",
    ),
    (
        "completed_orders_case_insensitive",
        """
select count(*) as completed
from staging.stg_events
where event_date >= '2026-11-14'
  and lower(event_name) = 'order completed'
""",
    ),
    (
        "completions_by_os",
        """
select os_name, count(*) as completions
from staging.stg_events
where event_name = 'Order Completed'
  and event_date between '2026-11-01' and '2026-11-20'
group by os_name
order by completions desc
""",
    ),
    (
        "monthly_revenue_2026",
        """
select extract(month from order_date) as month, sum(total_amount) as revenue
from mart.fct_orders
where extract(year from order_date) = 2026
group by month
order by month
""",
    ),
    (
        "items_per_order_recent",
        """
select avg(items) as items_per_order
from mart.fct_orders
where created_at >= '2026-11-18'
""",
    ),
    (
        "signups_per_day",
        """
select date(created_at) as day, count(*) as signups
from staging.stg_users
group by day
order by day
""",
    ),
    (
        "todays_or_completed_events",
        """
select count(*) as events
from staging.stg_events
where event_date = '2026-11-20' or event_name = 'Order Completed'
""",
    ),
    (
        "top_customers",
        """
select user_id, country, orders, lifetime_revenue
from mart.mart_user_behavior
order by lifetime_revenue desc
limit 20
""",
    ),
    (
        "mobile_funnel_november",
        """
select session_date, sessions, add_to_cart_sessions, order_sessions
from mart.mart_conversion_funnel
where device_type = 'mobile'
  and extract(year from session_date) = 2026
  and extract(month from session_date) = 11
order by session_date
""",
    ),
    (
        "buyers_per_day",
        """
select order_date, count(distinct user_id) as buyers
from mart.fct_orders
where order_date >= '2026-11-14'
group by order_date
""",
    ),
    (
        "sessions_by_visitor_with_events",
        """
select s.device_type, count(*) as events
from staging.int_sessions s
join staging.stg_events e on e.anonymous_id = s.anonymous_id
where s.session_date = '2026-11-19' and e.event_date = '2026-11-19'
group by s.device_type
""",
    ),
]
