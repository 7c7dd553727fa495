{{ config(materialized='view') }}

select
    stage,
    error,
    payload,
    source,
    message_id,
    pubsub_message_id,
    ingested_at,
    ingest_date
from {{ source('raw', 'events_dead_letter') }}
