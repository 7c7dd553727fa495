with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_order_items')) }}
)

select
    {{ dbt.safe_cast(json_value('after', '$.order_id'), dbt.type_bigint()) }} as order_id,
    {{ dbt.safe_cast(json_value('after', '$.line_number'), dbt.type_int()) }} as line_number,
    {{ dbt.safe_cast(json_value('after', '$.product_id'), dbt.type_bigint()) }} as product_id,
    {{ dbt.safe_cast(json_value('after', '$.quantity'), dbt.type_int()) }} as quantity,
    {{ dbt.safe_cast(json_value('after', '$.unit_price'), dbt.type_numeric()) }} as unit_price
from current_rows
