-- One row per product in stg_products: behaviour (track events naming the product) and
-- sales (lines of sold orders, fct_order_lines), with what refunds took back. Amounts in USD.
with

products as (
    select * from {{ ref('stg_products') }}
),

product_events as (
    select
        product_id,
        count(case when event_name = 'Product Viewed' then 1 end) as views,
        count(case when event_name = 'Product Added' then 1 end) as add_to_carts
    from {{ ref('stg_events') }}
    where
        event_type = 'track'
        and event_name in ('Product Viewed', 'Product Added')
        and product_id is not null
    group by product_id
),

product_sales as (
    select
        product_id,
        sum(quantity) as units_sold,
        sum(case when is_refunded then quantity else 0 end) as units_refunded,
        sum(line_amount_usd) as revenue,
        sum(case when is_refunded then line_amount_usd else 0 end) as refunded_revenue,
        count(distinct order_id) as orders,
        count(distinct case when is_refunded then order_id end) as refunded_orders
    from {{ ref('fct_order_lines') }}
    where is_sale
    group by product_id
)

select
    products.product_id,
    products.sku,
    products.name,
    products.category,
    products.brand,
    {{ to_money('products.price') }} as price,
    products.currency,
    products.active,
    cast(coalesce(product_events.views, 0) as {{ dbt.type_bigint() }}) as views,
    cast(coalesce(product_events.add_to_carts, 0) as {{ dbt.type_bigint() }}) as add_to_carts,
    cast(coalesce(product_sales.units_sold, 0) as {{ dbt.type_bigint() }}) as units_sold,
    cast(coalesce(product_sales.units_refunded, 0) as {{ dbt.type_bigint() }}) as units_refunded,
    cast(coalesce(product_sales.units_sold, 0) - coalesce(product_sales.units_refunded, 0) as {{ dbt.type_bigint() }})
        as net_units_sold,
    {{ to_money('coalesce(product_sales.revenue, 0)') }} as revenue,
    {{ to_money('coalesce(product_sales.refunded_revenue, 0)') }} as refunded_revenue,
    {{ to_money('coalesce(product_sales.revenue, 0) - coalesce(product_sales.refunded_revenue, 0)') }}
        as net_revenue,
    cast(coalesce(product_sales.orders, 0) as {{ dbt.type_bigint() }}) as orders,
    cast(coalesce(product_sales.refunded_orders, 0) as {{ dbt.type_bigint() }}) as refunded_orders,
    {{ safe_divide('product_sales.refunded_orders', 'product_sales.orders') }} as refund_rate,
    {{ safe_divide('coalesce(product_sales.orders, 0)', 'product_events.views') }} as view_to_order_rate
from products
left join product_events
    on products.product_id = product_events.product_id
left join product_sales
    on products.product_id = product_sales.product_id
