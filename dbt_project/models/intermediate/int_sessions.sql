{#-
    Incremental on both engines: a refresh rebuilds the sessions of the visitors with events
    that landed since the last build (stg_events.ingested_at after the newest
    last_ingested_at here, less the look-back stg_events uses, var ingest_lookback_minutes),
    from all of those visitors' events, and replaces them (delete+insert on anonymous_id):
    a late event can join or split any of its visitor's sessions, so a visitor's sessions
    are rebuilt together or not at all. The cost follows the visitors who were active, not
    the history. On BigQuery the project adds delete+insert
    (macros/bigquery_delete_insert.sql): a merge on session_id would keep the sessions a late
    event has merged away.
    Not followed: a message whose deliveries name different visitors keeps the first
    visitor's session until a --full-refresh.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='anonymous_id',
        on_schema_change='append_new_columns',
        partition_by=bq_partition_by('session_date'),
        cluster_by=bq_cluster_by(['anonymous_id']),
    )
}}

{%- set timeout_minutes = var('session_timeout_minutes', 30) | int %}
{%- set lookback_minutes = var('ingest_lookback_minutes', 60) | int %}
{#- a table built before last_ingested_at existed is rebuilt whole once (the column added) #}
{%- set changed_only = is_incremental() and relation_has_column(this, 'last_ingested_at') %}
{%- if is_incremental() and not changed_only -%}
{%- do log('int_sessions predates last_ingested_at: rebuilding every visitor once', info=true) -%}
{%- endif %}

with

events as (
    select
        message_id,
        source,
        anonymous_id,
        user_id,
        event_type,
        event_name,
        event_timestamp,
        device_type,
        traffic_source,
        campaign,
        order_id,
        ingested_at,
        lag(event_timestamp) over (
            partition by anonymous_id
            order by event_timestamp, source, message_id
        ) as previous_event_at
    from {{ ref('stg_events') }}
    where
        anonymous_id is not null
    {%- if changed_only %}
    -- the visitors with events that landed since the last build
    and anonymous_id in (
        select arrivals.anonymous_id
        from {{ ref('stg_events') }} as arrivals
        cross join (select max(last_ingested_at) as newest from {{ this }}) as built
        where
            built.newest is null
            or arrivals.ingested_at > {{ timestamp_add_minutes('built.newest', -lookback_minutes) }}
    )
    {%- endif %}
),

-- a session starts with a visitor's first event, or with an event more than 30 minutes
-- (to the microsecond) after the visitor's previous one
session_starts as (
    select
        *,
        case
            when previous_event_at is null then 1
            when event_timestamp > {{ timestamp_add_minutes('previous_event_at', timeout_minutes) }} then 1
            else 0
        end as is_session_start
    from events
),

sessionized as (
    select
        *,
        sum(is_session_start) over (
            partition by anonymous_id
            order by event_timestamp, source, message_id
            rows between unbounded preceding and current row
        ) as session_number,
        row_number() over (
            partition by anonymous_id
            order by event_timestamp, source, message_id
        ) as visitor_event_number
    from session_starts
),

-- the ordered funnel: each step counts only after the previous step, in the same session;
-- only track events count (a page or screen named like a step is not one)
funnel_events as (
    select
        anonymous_id,
        session_number,
        event_name,
        event_timestamp
    from sessionized
    where
        event_type = 'track'
        and event_name in (
            'Product Viewed', 'Product Added', 'Checkout Started', 'Payment Info Entered', 'Order Completed'
        )
),

{{ funnel_step(none, 'Product Viewed', 'viewed_at') }},
{{ funnel_step('viewed_at', 'Product Added', 'added_at') }},
{{ funnel_step('added_at', 'Checkout Started', 'checkout_at') }},
{{ funnel_step('checkout_at', 'Payment Info Entered', 'payment_at') }},
{{ funnel_step('payment_at', 'Order Completed', 'ordered_at') }},

sessions as (
    select
        anonymous_id,
        session_number,
        min(event_timestamp) as session_start,
        max(event_timestamp) as session_end,
        min(visitor_event_number) as first_event_number,
        count(*) as events,
        count(case when event_type in ('page', 'screen') then 1 end) as page_views,
        count(case when event_type = 'track' and event_name = 'Product Viewed' then 1 end) as product_views,
        count(case when event_type = 'track' and event_name = 'Product Added' then 1 end) as cart_adds,
        count(case when event_type = 'track' and event_name = 'Checkout Started' then 1 end) as checkouts_started,
        count(distinct case when event_type = 'track' and event_name = 'Order Completed' then order_id end)
            as orders_completed,
        count(case when event_type = 'track' and event_name = 'Order Completed' then 1 end) as order_events,
        max(ingested_at) as last_ingested_at
    from sessionized
    group by anonymous_id, session_number
),

first_events as (
    select
        anonymous_id,
        visitor_event_number,
        device_type,
        traffic_source,
        campaign,
        source
    from sessionized
    where is_session_start = 1
),

-- who the visitor was: the latest shop user id of the session, else the latest ever seen
identified as (
    select
        anonymous_id,
        session_number,
        {{ parse_integer('user_id') }} as user_id,
        row_number() over (
            partition by anonymous_id, session_number
            order by event_timestamp desc, source desc, message_id desc
        ) as session_rank,
        row_number() over (
            partition by anonymous_id
            order by event_timestamp desc, source desc, message_id desc
        ) as visitor_rank
    from sessionized
    where {{ parse_integer('user_id') }} is not null
)

select
    {{ dbt.hash(dbt.concat([
        'sessions.anonymous_id', "'-'", dbt.safe_cast(epoch_microseconds('sessions.session_start'), dbt.type_string())
    ])) }} as session_id,
    sessions.anonymous_id,
    coalesce(session_users.user_id, visitor_users.user_id) as user_id,
    cast(sessions.session_number as {{ dbt.type_bigint() }}) as session_number,
    sessions.session_start,
    sessions.session_end,
    cast(sessions.session_start as date) as session_date,
    first_events.device_type,
    first_events.traffic_source,
    first_events.campaign,
    first_events.source,
    sessions.events,
    sessions.page_views,
    sessions.product_views,
    sessions.cart_adds,
    sessions.checkouts_started,
    sessions.orders_completed,
    viewed.viewed_at is not null as reached_product_view,
    added.added_at is not null as reached_add_to_cart,
    checkout.checkout_at is not null as reached_checkout,
    payment.payment_at is not null as reached_payment,
    ordered.ordered_at is not null as reached_order,
    sessions.cart_adds > 0 as has_add_to_cart,
    sessions.checkouts_started > 0 as has_checkout,
    sessions.order_events > 0 as has_order,
    sessions.last_ingested_at
from sessions
inner join first_events
    on
        sessions.anonymous_id = first_events.anonymous_id
        and sessions.first_event_number = first_events.visitor_event_number
left join identified as session_users
    on
        sessions.anonymous_id = session_users.anonymous_id
        and sessions.session_number = session_users.session_number
        and session_users.session_rank = 1
left join identified as visitor_users
    on
        sessions.anonymous_id = visitor_users.anonymous_id
        and visitor_users.visitor_rank = 1
{%- for step in ('viewed', 'added', 'checkout', 'payment', 'ordered') %}
left join {{ step }}
    on
        sessions.anonymous_id = {{ step }}.anonymous_id
        and sessions.session_number = {{ step }}.session_number
{%- endfor %}
