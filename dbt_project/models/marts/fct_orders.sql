{{
    config(
        partition_by=bq_partition_by('order_date'),
        cluster_by=bq_cluster_by(['user_id', 'status']),
    )
}}

with

orders as (
    select * from {{ ref('stg_orders') }}
),

order_lines as (
    select
        order_id,
        cast(sum(quantity) as {{ dbt.type_bigint() }}) as items,
        count(*) as lines
    from {{ ref('stg_order_items') }}
    group by order_id
)

select
    orders.order_id,
    orders.user_id,
    orders.status,
    orders.created_at,
    cast(orders.created_at as date) as order_date,
    orders.paid_at,
    orders.refunded_at,
    cast(orders.refunded_at as date) as refund_date,
    orders.subtotal,
    orders.shipping,
    orders.total_amount,
    coalesce(order_lines.items, 0) as items,
    coalesce(order_lines.lines, 0) as lines,
    orders.status in ('paid', 'shipped', 'delivered', 'refunded') as is_paid,
    orders.status = 'refunded' as is_refunded
from orders
left join order_lines
    on orders.order_id = order_lines.order_id
