with

-- replayed changes (same order and lsn) count once
status_changes as (
    select
        {{ dbt.safe_cast(json_value('after', '$.order_id'), dbt.type_bigint()) }} as order_id,
        {{ json_value('after', '$.status') }} as status,
        {{ json_value('before', '$.status') }} as before_status,
        op,
        source_ts,
        lsn,
        row_number() over (
            partition by pk, lsn
            order by kafka_offset desc nulls last, ingested_at desc
        ) as replay_rank
    from {{ source('raw', 'cdc_orders') }}
    where op in ('c', 'r', 'u')
),

-- the status was set (create, snapshot) or changed (update to another status)
status_set as (
    select
        order_id,
        status,
        before_status,
        source_ts,
        lsn
    from status_changes
    where
        replay_rank = 1
        and (op in ('c', 'r') or before_status is null or before_status != status)
)

select
    order_id,
    status,
    coalesce(
        before_status,
        lag(status) over (partition by order_id order by lsn)
    ) as previous_status,
    source_ts as changed_at,
    lsn
from status_set
