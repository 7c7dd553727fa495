{# a table: a DuckDB view would bake the lake path of build time into the warehouse file #}
{{ config(materialized='table') }}

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
