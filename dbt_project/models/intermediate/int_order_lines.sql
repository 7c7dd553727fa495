-- The lines of every order in int_orders: the current lines of current orders, and for an
-- order deleted from the source the lines as they stood when it was deleted (lines deleted
-- with or after it). A line whose key changed (lines renumbered) counts under its new key.
with

line_images as (
    {{ cdc_latest_images(source('raw', 'cdc_order_items')) }}
),

lines as (
    select
        {{ order_item_columns('after') }},
        is_current,
        removed_lsn
    from line_images
),

orders as (
    select
        order_id,
        is_in_source,
        removed_lsn
    from {{ ref('int_orders') }}
)

select
    lines.order_id,
    lines.line_number,
    lines.product_id,
    lines.quantity,
    lines.unit_price
from lines
inner join orders
    on lines.order_id = orders.order_id
where
    (orders.is_in_source and lines.is_current)
    or (not orders.is_in_source and (lines.is_current or lines.removed_lsn >= orders.removed_lsn))
