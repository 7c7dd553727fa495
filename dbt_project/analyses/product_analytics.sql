-- Products: the best sellers of each category, with how well views turn into orders.
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
        revenue,
        orders,
        view_to_order_rate,
        {{ safe_divide('add_to_carts', 'views') }} as view_to_cart_rate,
        revenue / sum(revenue) over (partition by category) as share_of_category_revenue,
        rank() over (partition by category order by revenue desc, units_sold desc) as revenue_rank
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
    revenue,
    orders,
    view_to_cart_rate,
    view_to_order_rate,
    share_of_category_revenue
from ranked
where revenue_rank <= 5
order by category asc, revenue_rank asc
