-- every funnel step is reached by no more sessions than the step before it
select *
from {{ ref('mart_conversion_funnel') }}
where
    product_view_sessions > sessions
    or add_to_cart_sessions > product_view_sessions
    or checkout_sessions > add_to_cart_sessions
    or payment_sessions > checkout_sessions
    or order_sessions > payment_sessions
