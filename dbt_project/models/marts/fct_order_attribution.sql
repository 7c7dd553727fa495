{{ config(cluster_by=bq_cluster_by(['channel'])) }}

{#-
    Which session an order was placed in, and which marketing touch it is credited to.

    The order's session: the session holding the first Order Completed event received for
    the order (sessions of int_sessions cover their events from first to last). Orders with
    no such event (sent by no client) have none and are credited to 'unattributed'.

    Attribution (last non-direct touch): the latest session of the same visitor (the same
    anonymous_id, or the same shop user) that started within var attribution_window_days
    (default 30) before the order's session started, up to and including that session, and
    whose traffic source is not 'direct'; the order is credited to its traffic source and
    campaign. Without one, to 'direct'.
-#}
{%- set window_days = var('attribution_window_days', 30) | int %}

with

order_events as (
    select
        order_id,
        anonymous_id,
        event_timestamp,
        row_number() over (
            partition by order_id
            order by received_at, source, message_id
        ) as delivery_rank
    from {{ ref('stg_events') }}
    where
        event_type = 'track'
        and event_name = 'Order Completed'
        and order_id is not null
        and anonymous_id is not null
),

order_sessions as (
    select
        order_events.order_id,
        sessions.session_id,
        sessions.anonymous_id,
        sessions.user_id,
        sessions.session_start
    from order_events
    inner join {{ ref('int_sessions') }} as sessions
        on
            order_events.anonymous_id = sessions.anonymous_id
            and order_events.event_timestamp between sessions.session_start and sessions.session_end
    where order_events.delivery_rank = 1
),

-- earlier sessions of the same visitor: the same device, or the same shop user
visitor_sessions as (
    select
        order_sessions.order_id,
        touches.session_id,
        touches.session_start,
        touches.traffic_source,
        touches.campaign
    from order_sessions
    inner join {{ ref('int_sessions') }} as touches
        on order_sessions.anonymous_id = touches.anonymous_id
    union distinct
    select
        order_sessions.order_id,
        touches.session_id,
        touches.session_start,
        touches.traffic_source,
        touches.campaign
    from order_sessions
    inner join {{ ref('int_sessions') }} as touches
        on order_sessions.user_id = touches.user_id
),

touches as (
    select
        visitor_sessions.order_id,
        visitor_sessions.session_id,
        visitor_sessions.traffic_source,
        visitor_sessions.campaign,
        row_number() over (
            partition by visitor_sessions.order_id
            order by visitor_sessions.session_start desc, visitor_sessions.session_id desc
        ) as touch_rank
    from visitor_sessions
    inner join order_sessions
        on visitor_sessions.order_id = order_sessions.order_id
    where
        visitor_sessions.traffic_source != 'direct'
        and visitor_sessions.session_start <= order_sessions.session_start
        and visitor_sessions.session_start >= {{ timestamp_add_days('order_sessions.session_start', -window_days) }}
)

select
    order_sessions.order_id,
    order_sessions.session_id as order_session_id,
    order_sessions.session_start as order_session_start,
    touches.session_id as attributed_session_id,
    coalesce(touches.traffic_source, 'direct') as channel,
    coalesce(touches.campaign, '(none)') as campaign
from order_sessions
left join touches
    on
        order_sessions.order_id = touches.order_id
        and touches.touch_rank = 1
