with

products as (
    select * from {{ ref('stg_products') }}
),

product_events as (
    select
        {{ dbt.safe_cast('product_id', dbt.type_bigint()) }} as product_id,
        count(case when event_name = 'Product Viewed' then 1 end) as views,
        count(case when event_name = 'Product Added' then 1 end) as add_to_carts
    from {{ ref('stg_events') }}
    where
        event_name in ('Product Viewed', 'Product Added')
        and product_id is not null
    group by {{ dbt.safe_cast('product_id', dbt.type_bigint()) }}
),

paid_lines as (
    select
        order_items.product_id,
        order_items.order_id,
        order_items.quantity,
        order_items.quantity * order_items.unit_price as line_revenue
    from {{ ref('stg_order_items') }} as order_items
    inner join {{ ref('fct_orders') }} as orders
        on order_items.order_id = orders.order_id
    where orders.is_paid
),

product_sales as (
    select
        product_id,
        cast(sum(quantity) as {{ dbt.type_bigint() }}) as units_sold,
        sum(line_revenue) as revenue,
        count(distinct order_id) as orders
    from paid_lines
    group by product_id
)

select
    products.product_id,
    products.sku,
    products.name,
    products.category,
    products.brand,
    products.price,
    products.active,
    coalesce(product_events.views, 0) as views,
    coalesce(product_events.add_to_carts, 0) as add_to_carts,
    coalesce(product_sales.units_sold, 0) as units_sold,
    coalesce(product_sales.revenue, 0) as revenue,
    coalesce(product_sales.orders, 0) as orders,
    {{ safe_divide('coalesce(product_sales.orders, 0)', 'product_events.views') }} as view_to_order_rate
from products
left join product_events
    on products.product_id = product_events.product_id
left join product_sales
    on products.product_id = product_sales.product_id
