{{
    config(
        partition_by=bq_partition_by('sales_date'),
    )
}}

-- Fulfilment of the day's sales: how many shipped and were delivered, and how long it took
-- (paid -> shipped, shipped -> delivered, in hours). Times come from the status history; an
-- order whose shipping was not observed (shipped and delivered while CDC was down, or before
-- it started) has none and is left out of the averages.
select
    sale_date as sales_date,
    cast(count(*) as {{ dbt.type_bigint() }}) as orders,
    cast(count(shipped_at) as {{ dbt.type_bigint() }}) as shipped_orders,
    cast(count(delivered_at) as {{ dbt.type_bigint() }}) as delivered_orders,
    cast(round(avg(hours_to_ship), 3) as {{ type_double() }}) as avg_hours_to_ship,
    cast(round(max(hours_to_ship), 3) as {{ type_double() }}) as max_hours_to_ship,
    cast(round(avg(hours_in_transit), 3) as {{ type_double() }}) as avg_hours_in_transit,
    cast(round(max(hours_in_transit), 3) as {{ type_double() }}) as max_hours_in_transit
from {{ ref('fct_orders') }}
where is_sale
group by sale_date
