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
    Whole event dates are recomputed from raw and replace what was there:
    - vars min_date/max_date (inclusive) given: exactly those dates;
    - else, incremental: every date with raw rows ingested after the newest row loaded,
      less a look-back (var ingest_lookback_minutes, default 60) for writers that stamp
      ingested_at before their file becomes visible;
    - else (first run, --full-refresh): all dates.
-#}
{%- set min_date = date_var('min_date') or date_var('max_date') -%}
{%- set max_date = date_var('max_date') or min_date -%}
{%- if min_date is not none and min_date > max_date -%}
    {{ exceptions.raise_compiler_error("min_date " ~ min_date ~ " is after max_date " ~ max_date) }}
{%- endif -%}

with

{% if is_incremental() and min_date is none -%}
loaded as (
    select max(ingested_at) as max_ingested_at
    from {{ this }}
),

batch_dates as (
    select distinct arrivals.event_date
    from {{ source('raw', 'events') }} as arrivals
    cross join loaded
    where
        loaded.max_ingested_at is null
        or arrivals.ingested_at > {{ dbt.dateadd(
            'minute', -(var('ingest_lookback_minutes', 60) | int), 'loaded.max_ingested_at'
        ) }}
),

{% endif -%}

raw_events as (
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
        ingestion_id,
        device_type,
        os_name,
        browser,
        page_path,
        traffic_source,
        payload
    from {{ source('raw', 'events') }}
    {%- if min_date is not none %}
    where event_date between cast('{{ min_date }}' as date) and cast('{{ max_date }}' as date)
    {%- elif is_incremental() %}
    where event_date in (select batch_dates.event_date from batch_dates)
    {%- endif %}
),

-- at-least-once delivery and client retries: the first delivery of a message wins
first_deliveries as (
    select *
    from (
        select
            *,
            row_number() over (
                partition by message_id
                order by received_at, ingested_at, ingestion_id nulls last, payload
            ) as delivery_rank
        from raw_events
    ) as ranked
    where delivery_rank = 1
),

{% if is_incremental() -%}
-- a message already loaded on a date outside this batch stays where it is
loaded_elsewhere as (
    select message_id
    from {{ this }}
    {%- if min_date is not none %}
    where event_date not between cast('{{ min_date }}' as date) and cast('{{ max_date }}' as date)
    {%- else %}
    where event_date not in (select batch_dates.event_date from batch_dates)
    {%- endif %}
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
            where loaded_elsewhere.message_id = first_deliveries.message_id
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
    {{ json_value('properties', '$.product_id') }} as product_id,
    {{ json_value('properties', '$.sku') }} as sku,
    {{ json_value('properties', '$.category') }} as category,
    {{ dbt.safe_cast(json_value('properties', '$.price'), type_double()) }} as price,
    {{ dbt.safe_cast(json_value('properties', '$.quantity'), dbt.type_int()) }} as quantity,
    {{ json_value('properties', '$.order_id') }} as order_id,
    {{ dbt.safe_cast(json_value('properties', '$.revenue'), dbt.type_numeric()) }} as revenue,
    {{ dbt.safe_cast(json_value('properties', '$.total'), dbt.type_numeric()) }} as order_total,
    {{ json_value('properties', '$.currency') }} as currency,
    properties
from new_events
