{{
    config(
        partition_by=bq_partition_by('session_date'),
        cluster_by=bq_cluster_by(['device_type', 'traffic_source']),
    )
}}

with

sessions as (
    select * from {{ ref('int_sessions') }}
),

funnel as (
    select
        session_date,
        device_type,
        traffic_source,
        count(*) as sessions,
        count(case when has_product_view then 1 end) as product_view_sessions,
        count(case when has_add_to_cart then 1 end) as add_to_cart_sessions,
        count(case when has_checkout then 1 end) as checkout_sessions,
        count(case when has_payment_info then 1 end) as payment_sessions,
        count(case when has_order then 1 end) as order_sessions
    from sessions
    group by session_date, device_type, traffic_source
)

select
    session_date,
    device_type,
    traffic_source,
    sessions,
    product_view_sessions,
    add_to_cart_sessions,
    checkout_sessions,
    payment_sessions,
    order_sessions,
    {{ safe_divide('order_sessions', 'sessions') }} as conversion_rate,
    {{ safe_divide('order_sessions', 'add_to_cart_sessions') }} as cart_to_order_rate
from funnel
