-- fct_orders: total_amount = subtotal + shipping
select
    order_id,
    subtotal,
    shipping,
    total_amount
from {{ ref('fct_orders') }}
where total_amount != subtotal + shipping
