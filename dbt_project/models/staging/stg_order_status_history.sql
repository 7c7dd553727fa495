with

-- every image of an order row (create, update, snapshot); a replayed change (same order
-- and LSN, ingested again or in another partition) counts once, and at one LSN a streamed
-- change beats a snapshot row
order_images as (
    select
        op,
        lsn,
        source_ts,
        after,
        row_number() over (
            partition by pk, lsn
            order by
                case when op = 'r' then 0 else 1 end desc,
                ingested_at asc,
                kafka_partition asc nulls last,
                kafka_offset asc nulls last
        ) as replay_rank
    from {{ source('raw', 'cdc_orders') }}
    where op in ('c', 'r', 'u') and pk is not null and after is not null
),

typed as (
    select
        op,
        lsn,
        source_ts,
        {{ order_columns('after') }}
    from order_images
    where replay_rank = 1
),

-- the status each image shows next to the one before it, whatever carried it: a snapshot
-- taken again after an outage repeats statuses already known and may skip some
sequenced as (
    select
        *,
        lag(status) over (partition by order_id order by lsn) as previous_status
    from typed
)

select
    order_id,
    status,
    previous_status,
    -- when the status was set: the row's own updated_at (the shop sets it with every
    -- change), so a snapshot row keeps the time of the change and not of the snapshot
    coalesce(updated_at, source_ts) as changed_at,
    source_ts as committed_at,
    op,
    lsn,
    user_id,
    currency,
    subtotal,
    shipping,
    total_amount,
    created_at,
    paid_at,
    refunded_at
from sequenced
where previous_status is null or previous_status != status
