{{
    config(
        materialized='incremental',
        incremental_strategy=('insert_overwrite' if target.type == 'bigquery' else 'delete+insert'),
        unique_key=(none if target.type == 'bigquery' else 'event_date'),
        partition_by=bq_partition_by('event_date'),
        cluster_by=bq_cluster_by(['event_name', 'anonymous_id']),
        on_schema_change='append_new_columns',
        tags=['partitioned'],
    )
}}

{#-
    One row per message: Segment messageIds are unique per source (write key), so a message
    is (source, message_id) and the first delivery received wins.

    Whole event dates are recomputed from raw and replace what was there. The dates asked for:
    - vars min_date/max_date (inclusive): those dates;
    - else, incremental: every date with raw rows ingested after the newest row loaded, less
      a look-back (var ingest_lookback_minutes, default 60) for writers that stamp
      ingested_at before their file becomes visible;
    - else (first run, --full-refresh): all dates.
    To those, the dates holding other deliveries of the same messages are added (a retry
    whose client clock changed lands on another event date), so both sides of such a pair
    are decided together. Deliveries of one message whose event dates are at most
    dedup_window_days apart are always compared, so the result does not depend on the order
    in which dates are built. Further apart (a clock years off): a message already loaded
    on a date that is not recomputed stays where it is.
-#}
{%- set min_date = date_var('min_date') or date_var('max_date') -%}
{%- set max_date = date_var('max_date') or min_date -%}
{%- if min_date is not none and min_date > max_date -%}
    {{ exceptions.raise_compiler_error("min_date " ~ min_date ~ " is after max_date " ~ max_date) }}
{%- endif -%}
{%- set window_days = var('dedup_window_days', 2) | int -%}
{%- set batched = min_date is not none or is_incremental() -%}
{#- the window around the dates asked for: from the asked dates (batch_window below)... -#}
{%- set batch_low = '(select batch_window.batch_low from batch_window)' -%}
{%- set batch_high = '(select batch_window.batch_high from batch_window)' -%}
{%- set scan_low = '(select batch_window.scan_low from batch_window)' -%}
{%- set scan_high = '(select batch_window.scan_high from batch_window)' -%}
{%- if min_date is not none -%}
    {%- set day = modules.datetime.timedelta(days=1) -%}
    {%- set first_asked = modules.datetime.date.fromisoformat(min_date) -%}
    {%- set last_asked = modules.datetime.date.fromisoformat(max_date) -%}
    {#- ...or, for dates given, as literal dates, so BigQuery prunes the raw partitions -#}
    {%- set batch_low = "cast('" ~ (first_asked - day * window_days).isoformat() ~ "' as date)" -%}
    {%- set batch_high = "cast('" ~ (last_asked + day * window_days).isoformat() ~ "' as date)" -%}
    {%- set scan_low = "cast('" ~ (first_asked - day * 2 * window_days).isoformat() ~ "' as date)" -%}
    {%- set scan_high = "cast('" ~ (last_asked + day * 2 * window_days).isoformat() ~ "' as date)" -%}
{%- endif %}

with

{% if min_date is not none -%}
asked_dates as (
    select distinct event_date
    from {{ source('raw', 'events') }}
    where event_date between cast('{{ min_date }}' as date) and cast('{{ max_date }}' as date)
),

{% elif is_incremental() -%}
loaded as (
    select max(ingested_at) as max_ingested_at
    from {{ this }}
),

asked_dates as (
    select distinct arrivals.event_date
    from {{ source('raw', 'events') }} as arrivals
    cross join loaded
    where
        loaded.max_ingested_at is null
        or arrivals.ingested_at > {{ timestamp_add_minutes(
            'loaded.max_ingested_at', -(var('ingest_lookback_minutes', 60) | int)
        ) }}
),

batch_window as (
    select
        {{ date_add_days('min(asked_dates.event_date)', -window_days) }} as batch_low,
        {{ date_add_days('max(asked_dates.event_date)', window_days) }} as batch_high,
        {{ date_add_days('min(asked_dates.event_date)', -2 * window_days) }} as scan_low,
        {{ date_add_days('max(asked_dates.event_date)', 2 * window_days) }} as scan_high
    from asked_dates
),

{% endif -%}

{% if batched -%}
-- the messages delivered on the asked dates, and every date their deliveries landed on
asked_messages as (
    select distinct
        source,
        message_id
    from {{ source('raw', 'events') }}
    where event_date in (select asked_dates.event_date from asked_dates)
),

batch_dates as (
    select asked_dates.event_date
    from asked_dates
    union distinct
    select deliveries.event_date
    from {{ source('raw', 'events') }} as deliveries
    inner join asked_messages
        on
            deliveries.source = asked_messages.source
            and deliveries.message_id = asked_messages.message_id
    where deliveries.event_date between {{ batch_low }} and {{ batch_high }}
),

{% endif -%}

-- at-least-once delivery and client retries: the first delivery received wins
ranked_deliveries as (
    select
        message_id,
        type,
        event,
        anonymous_id,
        user_id,
        source,
        event_timestamp,
        event_date,
        received_at,
        ingested_at,
        device_type,
        os_name,
        browser,
        page_path,
        traffic_source,
        payload,
        row_number() over (
            partition by source, message_id
            order by received_at, ingested_at, ingestion_id nulls last, payload
        ) as delivery_rank
    from {{ source('raw', 'events') }}
    {%- if batched %}
    where event_date between {{ scan_low }} and {{ scan_high }}
    {%- endif %}
),

first_deliveries as (
    select *
    from ranked_deliveries
    where
        delivery_rank = 1
        {%- if batched %}
        and event_date in (select batch_dates.event_date from batch_dates)
        {%- endif %}
),

{% if is_incremental() -%}
-- a message already loaded on a date outside this batch stays where it is
loaded_elsewhere as (
    select
        source,
        message_id
    from {{ this }}
    where event_date not in (select batch_dates.event_date from batch_dates)
),

{% endif -%}

new_events as (
    select
        *,
        {{ json_query('payload', '$.properties') }} as properties
    from first_deliveries
    {%- if is_incremental() %}
    where
        not exists (
            select 1
            from loaded_elsewhere
            where
                loaded_elsewhere.source = first_deliveries.source
                and loaded_elsewhere.message_id = first_deliveries.message_id
        )
    {%- endif %}
)

select
    message_id,
    type as event_type,
    event as event_name,
    anonymous_id,
    user_id,
    source,
    event_timestamp,
    event_date,
    received_at,
    ingested_at,
    device_type,
    os_name,
    browser,
    page_path,
    traffic_source,
    {{ json_value('payload', '$.context.campaign.name') }} as campaign,
    {{ json_value('payload', '$.context.campaign.medium') }} as medium,
    {{ parse_integer(json_value('properties', '$.product_id')) }} as product_id,
    {{ json_value('properties', '$.sku') }} as sku,
    {{ json_value('properties', '$.category') }} as category,
    {{ parse_decimal(json_value('properties', '$.price')) }} as price,
    {{ parse_integer(json_value('properties', '$.quantity')) }} as quantity,
    {{ parse_integer(json_value('properties', '$.order_id')) }} as order_id,
    {{ parse_decimal(json_value('properties', '$.revenue')) }} as revenue,
    {{ parse_decimal(json_value('properties', '$.total')) }} as order_total,
    {{ json_value('properties', '$.currency') }} as currency,
    properties
from new_events
