{{
    config(
        partition_by=bq_partition_by('order_date'),
        cluster_by=bq_cluster_by(['product_id']),
    )
}}

-- One row per line of every order in fct_orders (a purged order keeps its lines), with the
-- order's dates and flags and the line's amount in the order's currency and in USD (at the
-- order's rate, rounded per line).
select
    lines.order_id,
    cast(lines.line_number as {{ dbt.type_bigint() }}) as line_number,
    lines.product_id,
    cast(lines.quantity as {{ dbt.type_bigint() }}) as quantity,
    {{ to_money('lines.unit_price') }} as unit_price,
    orders.currency,
    {{ to_money('lines.quantity * lines.unit_price') }} as line_amount,
    {{ to_money('lines.quantity * lines.unit_price * orders.rate_to_usd') }} as line_amount_usd,
    orders.order_date,
    orders.sale_date,
    orders.refund_date,
    orders.is_sale,
    orders.is_refunded
from {{ ref('int_order_lines') }} as lines
inner join {{ ref('fct_orders') }} as orders
    on lines.order_id = orders.order_id
