with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_orders')) }}
)

select
    {{ dbt.safe_cast(json_value('after', '$.order_id'), dbt.type_bigint()) }} as order_id,
    {{ dbt.safe_cast(json_value('after', '$.user_id'), dbt.type_bigint()) }} as user_id,
    {{ json_value('after', '$.status') }} as status,
    {{ json_value('after', '$.currency') }} as currency,
    {{ dbt.safe_cast(json_value('after', '$.subtotal'), dbt.type_numeric()) }} as subtotal,
    {{ dbt.safe_cast(json_value('after', '$.shipping'), dbt.type_numeric()) }} as shipping,
    {{ dbt.safe_cast(json_value('after', '$.total_amount'), dbt.type_numeric()) }} as total_amount,
    {{ parse_iso_timestamp(json_value('after', '$.created_at')) }} as created_at,
    {{ parse_iso_timestamp(json_value('after', '$.updated_at')) }} as updated_at,
    {{ parse_iso_timestamp(json_value('after', '$.paid_at')) }} as paid_at,
    {{ parse_iso_timestamp(json_value('after', '$.refunded_at')) }} as refunded_at
from current_rows
