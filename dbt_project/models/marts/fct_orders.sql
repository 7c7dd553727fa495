{{
    config(
        partition_by=bq_partition_by('order_date'),
        cluster_by=bq_cluster_by(['user_id', 'status']),
    )
}}

{#-
    One row per order ever placed, kept after the source purges it. Everything that dates
    a fact comes from the order's history (stg_order_status_history) or from timestamps the
    shop stores in the row, never from when the warehouse saw it, so rebuilding never moves
    an order to another day. See the README's data model for the definitions.
-#}

with

orders as (
    select * from {{ ref('int_orders') }}
),

history as (
    select * from {{ ref('stg_order_status_history') }}
),

-- when the order first reached each status
status_times as (
    select
        order_id,
        min(case when status in ('paid', 'shipped', 'delivered', 'refunded') then changed_at end) as first_sold_at,
        min(case when status = 'shipped' then changed_at end) as shipped_at,
        min(case when status = 'delivered' then changed_at end) as delivered_at,
        min(case when status = 'cancelled' then changed_at end) as cancelled_at
    from history
    group by order_id
),

-- the order as it stood when it was first seen sold: the amounts of the sale
sold_images as (
    select
        order_id,
        currency,
        subtotal,
        shipping,
        total_amount,
        row_number() over (partition by order_id order by lsn) as sold_rank
    from history
    where status in ('paid', 'shipped', 'delivered', 'refunded')
),

order_lines as (
    select
        order_id,
        cast(sum(quantity) as {{ dbt.type_bigint() }}) as items,
        cast(count(*) as {{ dbt.type_bigint() }}) as lines
    from {{ ref('int_order_lines') }}
    group by order_id
),

facts as (
    select
        orders.order_id,
        orders.user_id,
        orders.status,
        orders.is_in_source,
        coalesce(sold_images.currency, orders.currency) as currency,
        coalesce(sold_images.subtotal, orders.subtotal) as subtotal,
        coalesce(sold_images.shipping, orders.shipping) as shipping,
        coalesce(sold_images.total_amount, orders.total_amount) as total_amount,
        coalesce(order_lines.items, 0) as items,
        coalesce(order_lines.lines, 0) as lines,
        orders.created_at,
        coalesce(orders.paid_at, status_times.first_sold_at) as sold_at,
        status_times.shipped_at,
        status_times.delivered_at,
        orders.refunded_at,
        status_times.cancelled_at
    from orders
    left join status_times
        on orders.order_id = status_times.order_id
    left join sold_images
        on
            orders.order_id = sold_images.order_id
            and sold_images.sold_rank = 1
    left join order_lines
        on orders.order_id = order_lines.order_id
),

dated as (
    select
        *,
        cast(created_at as date) as order_date,
        cast(sold_at as date) as sale_date,
        cast(refunded_at as date) as refund_date,
        cast(cancelled_at as date) as cancel_date
    from facts
),

-- the rate in effect on the day of the sale (of the order, for orders never sold)
rates as (
    select
        currency,
        valid_from,
        lead(valid_from) over (partition by currency order by valid_from) as valid_until,
        rate_to_usd
    from {{ ref('currency_rates') }}
),

converted as (
    select
        dated.*,
        rates.rate_to_usd
    from dated
    left join rates
        on
            dated.currency = rates.currency
            and coalesce(dated.sale_date, dated.order_date) >= rates.valid_from
            and (rates.valid_until is null or coalesce(dated.sale_date, dated.order_date) < rates.valid_until)
)

select
    converted.order_id,
    converted.user_id,
    converted.status,
    converted.is_in_source,
    converted.currency,
    {{ to_money('converted.subtotal') }} as subtotal,
    {{ to_money('converted.shipping') }} as shipping,
    {{ to_money('converted.total_amount') }} as total_amount,
    cast(converted.rate_to_usd as {{ dbt.type_numeric() }}) as rate_to_usd,
    {{ to_money('converted.total_amount * converted.rate_to_usd') }} as total_amount_usd,
    converted.items,
    converted.lines,
    converted.created_at,
    converted.order_date,
    converted.sold_at,
    converted.sale_date,
    converted.shipped_at,
    converted.delivered_at,
    converted.refunded_at,
    converted.refund_date,
    converted.cancelled_at,
    converted.cancel_date,
    converted.sold_at is not null as is_sale,
    converted.refunded_at is not null as is_refunded,
    converted.cancelled_at is not null as is_cancelled,
    {{ hours_between('converted.sold_at', 'converted.shipped_at') }} as hours_to_ship,
    {{ hours_between('converted.shipped_at', 'converted.delivered_at') }} as hours_in_transit
from converted
