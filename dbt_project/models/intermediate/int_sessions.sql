{{
    config(
        partition_by=bq_partition_by('session_date'),
        cluster_by=bq_cluster_by(['anonymous_id']),
    )
}}

{%- set timeout_seconds = (var('session_timeout_minutes', 30) | int) * 60 %}

with

events as (
    select
        message_id,
        anonymous_id,
        user_id,
        event_type,
        event_name,
        event_timestamp,
        device_type,
        traffic_source,
        source,
        lag(event_timestamp) over (
            partition by anonymous_id
            order by event_timestamp, message_id
        ) as previous_event_at
    from {{ ref('stg_events') }}
    where anonymous_id is not null
),

-- a new session starts with a visitor's first event or after 30 minutes of inactivity
session_starts as (
    select
        *,
        case
            when previous_event_at is null then 1
            when {{ dbt.datediff('previous_event_at', 'event_timestamp', 'second') }} > {{ timeout_seconds }} then 1
            else 0
        end as is_session_start
    from events
),

numbered as (
    select
        *,
        sum(is_session_start) over (
            partition by anonymous_id
            order by event_timestamp, message_id
            rows between unbounded preceding and current row
        ) as session_number
    from session_starts
),

sessionized as (
    select
        *,
        row_number() over (
            partition by anonymous_id, session_number
            order by event_timestamp, message_id
        ) as event_number
    from numbered
),

-- who the visitor was: the latest user_id of the session, else the latest ever seen
session_users as (
    select
        anonymous_id,
        session_number,
        user_id,
        row_number() over (
            partition by anonymous_id, session_number
            order by event_timestamp desc, message_id desc
        ) as user_rank
    from sessionized
    where user_id is not null
),

visitor_users as (
    select
        anonymous_id,
        user_id,
        row_number() over (
            partition by anonymous_id
            order by event_timestamp desc, message_id desc
        ) as user_rank
    from sessionized
    where user_id is not null
),

sessions as (
    select
        anonymous_id,
        session_number,
        min(event_timestamp) as session_start,
        max(event_timestamp) as session_end,
        count(*) as events,
        count(case when event_type in ('page', 'screen') then 1 end) as page_views,
        count(case when event_name = 'Product Viewed' then 1 end) as product_views,
        {{ dbt.bool_or("event_name = 'Product Added'") }} as has_add_to_cart,
        {{ dbt.bool_or("event_name = 'Checkout Started'") }} as has_checkout,
        {{ dbt.bool_or("event_name = 'Payment Info Entered'") }} as has_payment_info,
        {{ dbt.bool_or("event_name = 'Order Completed'") }} as has_order
    from sessionized
    group by anonymous_id, session_number
),

first_events as (
    select
        anonymous_id,
        session_number,
        device_type,
        traffic_source,
        source
    from sessionized
    where event_number = 1
)

select
    {{ dbt.hash(dbt.concat([
        'sessions.anonymous_id', "'-'", dbt.safe_cast('sessions.session_start', dbt.type_string())
    ])) }} as session_id,
    sessions.anonymous_id,
    coalesce(session_users.user_id, visitor_users.user_id) as user_id,
    sessions.session_start,
    sessions.session_end,
    cast(sessions.session_start as date) as session_date,
    first_events.device_type,
    first_events.traffic_source,
    first_events.source,
    sessions.events,
    sessions.page_views,
    sessions.product_views,
    sessions.product_views > 0 as has_product_view,
    sessions.has_add_to_cart,
    sessions.has_checkout,
    sessions.has_payment_info,
    sessions.has_order
from sessions
inner join first_events
    on
        sessions.anonymous_id = first_events.anonymous_id
        and sessions.session_number = first_events.session_number
left join session_users
    on
        sessions.anonymous_id = session_users.anonymous_id
        and sessions.session_number = session_users.session_number
        and session_users.user_rank = 1
left join visitor_users
    on
        sessions.anonymous_id = visitor_users.anonymous_id
        and visitor_users.user_rank = 1
