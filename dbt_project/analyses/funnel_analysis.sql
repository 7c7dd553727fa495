-- Funnel per device type over the whole period: sessions at each step and step-to-step rates.
with

funnel as (
    select
        device_type,
        sum(sessions) as sessions,
        sum(product_view_sessions) as product_view_sessions,
        sum(add_to_cart_sessions) as add_to_cart_sessions,
        sum(checkout_sessions) as checkout_sessions,
        sum(payment_sessions) as payment_sessions,
        sum(order_sessions) as order_sessions
    from {{ ref('mart_conversion_funnel') }}
    group by device_type
)

select
    device_type,
    sessions,
    product_view_sessions,
    add_to_cart_sessions,
    checkout_sessions,
    payment_sessions,
    order_sessions,
    {{ safe_divide('product_view_sessions', 'sessions') }} as view_rate,
    {{ safe_divide('add_to_cart_sessions', 'product_view_sessions') }} as cart_rate,
    {{ safe_divide('checkout_sessions', 'add_to_cart_sessions') }} as checkout_rate,
    {{ safe_divide('payment_sessions', 'checkout_sessions') }} as payment_rate,
    {{ safe_divide('order_sessions', 'payment_sessions') }} as order_rate,
    {{ safe_divide('order_sessions', 'sessions') }} as conversion_rate
from funnel
order by sessions desc
