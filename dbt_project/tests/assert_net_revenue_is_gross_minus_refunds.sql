-- mart_daily_sales: net_revenue = gross_revenue - refunds on every day
select
    sales_date,
    gross_revenue,
    refunds,
    net_revenue
from {{ ref('mart_daily_sales') }}
where net_revenue != gross_revenue - refunds
