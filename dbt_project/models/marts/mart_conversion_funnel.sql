{{
    config(
        partition_by=bq_partition_by('session_date'),
        cluster_by=bq_cluster_by(['device_type', 'traffic_source']),
    )
}}

-- The ordered conversion funnel per session_date x device_type x traffic_source (of the
-- session's first event): sessions that reached each step after the step before, in the
-- same session (int_sessions.reached_*), and sessions with any completed order.
select
    session_date,
    device_type,
    traffic_source,
    cast(count(*) as {{ dbt.type_bigint() }}) as sessions,
    cast(count(case when reached_product_view then 1 end) as {{ dbt.type_bigint() }}) as product_view_sessions,
    cast(count(case when reached_add_to_cart then 1 end) as {{ dbt.type_bigint() }}) as add_to_cart_sessions,
    cast(count(case when reached_checkout then 1 end) as {{ dbt.type_bigint() }}) as checkout_sessions,
    cast(count(case when reached_payment then 1 end) as {{ dbt.type_bigint() }}) as payment_sessions,
    cast(count(case when reached_order then 1 end) as {{ dbt.type_bigint() }}) as order_sessions,
    cast(count(case when has_order then 1 end) as {{ dbt.type_bigint() }}) as converting_sessions,
    {{ safe_divide('count(case when has_order then 1 end)', 'count(*)') }} as conversion_rate,
    {{ safe_divide('count(case when reached_order then 1 end)', 'count(case when reached_add_to_cart then 1 end)') }}
        as cart_to_order_rate
from {{ ref('int_sessions') }}
group by session_date, device_type, traffic_source
