-- Products: the best sellers of each category (net revenue in USD), with how well views turn
-- into orders and how often their sales are refunded.
with

products as (
    select * from {{ ref('mart_product_performance') }}
),

ranked as (
    select
        category,
        product_id,
        sku,
        name,
        brand,
        price,
        views,
        add_to_carts,
        units_sold,
        net_revenue,
        orders,
        refund_rate,
        view_to_order_rate,
        {{ safe_divide('add_to_carts', 'views') }} as view_to_cart_rate,
        {{ safe_divide('net_revenue', 'sum(net_revenue) over (partition by category)') }} as share_of_category_revenue,
        rank() over (partition by category order by net_revenue desc, units_sold desc) as revenue_rank
    from products
)

select
    category,
    revenue_rank,
    product_id,
    sku,
    name,
    brand,
    price,
    views,
    add_to_carts,
    units_sold,
    net_revenue,
    orders,
    refund_rate,
    view_to_cart_rate,
    view_to_order_rate,
    share_of_category_revenue
from ranked
where revenue_rank <= 5
order by category asc, revenue_rank asc
