-- every unit of every sale is in mart_product_performance (for products still in the catalog)
-- it reads several models: Dagster shows it as a check of mart_product_performance, and runs it as one
{{ config(meta={'dagster': {'ref': {'name': 'mart_product_performance'}}}) }}

with

products as (
    select sum(units_sold) as units_sold
    from {{ ref('mart_product_performance') }}
),

lines as (
    select sum(order_lines.quantity) as units_sold
    from {{ ref('fct_order_lines') }} as order_lines
    inner join {{ ref('stg_products') }} as products
        on order_lines.product_id = products.product_id
    where order_lines.is_sale
)

select *
from products
cross join lines
where coalesce(products.units_sold, 0) != coalesce(lines.units_sold, 0)
