{{
    config(
        partition_by=bq_partition_by('activity_date'),
    )
}}

-- Sessions and sales per UTC day, channel (traffic source) and campaign: sessions count on
-- the day they started under their own source and campaign; sales on their sale day under
-- the channel and campaign they are credited to (last non-direct touch, see
-- fct_order_attribution; 'unattributed' for sales without an order session).
with

session_side as (
    select
        session_date as activity_date,
        traffic_source as channel,
        coalesce(campaign, '(none)') as campaign,
        count(*) as sessions,
        count(case when has_order then 1 end) as converting_sessions
    from {{ ref('int_sessions') }}
    group by session_date, traffic_source, coalesce(campaign, '(none)')
),

credited_sales as (
    select
        orders.sale_date,
        orders.total_amount_usd,
        coalesce(attribution.channel, 'unattributed') as channel,
        coalesce(attribution.campaign, '(none)') as campaign
    from {{ ref('fct_orders') }} as orders
    left join {{ ref('fct_order_attribution') }} as attribution
        on orders.order_id = attribution.order_id
    where orders.is_sale
),

order_side as (
    select
        sale_date as activity_date,
        channel,
        campaign,
        count(*) as attributed_orders,
        sum(total_amount_usd) as attributed_revenue
    from credited_sales
    group by sale_date, channel, campaign
)

select
    coalesce(session_side.activity_date, order_side.activity_date) as activity_date,
    coalesce(session_side.channel, order_side.channel) as channel,
    coalesce(session_side.campaign, order_side.campaign) as campaign,
    cast(coalesce(session_side.sessions, 0) as {{ dbt.type_bigint() }}) as sessions,
    cast(coalesce(session_side.converting_sessions, 0) as {{ dbt.type_bigint() }}) as converting_sessions,
    {{ safe_divide('session_side.converting_sessions', 'session_side.sessions') }} as conversion_rate,
    cast(coalesce(order_side.attributed_orders, 0) as {{ dbt.type_bigint() }}) as attributed_orders,
    {{ to_money('coalesce(order_side.attributed_revenue, 0)') }} as attributed_revenue
from session_side
full outer join order_side
    on
        session_side.activity_date = order_side.activity_date
        and session_side.channel = order_side.channel
        and session_side.campaign = order_side.campaign
