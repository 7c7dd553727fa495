with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_products')) }}
)

select
    {{ dbt.safe_cast(json_value('after', '$.product_id'), dbt.type_bigint()) }} as product_id,
    {{ json_value('after', '$.sku') }} as sku,
    {{ json_value('after', '$.name') }} as name,
    {{ json_value('after', '$.category') }} as category,
    {{ json_value('after', '$.brand') }} as brand,
    {{ dbt.safe_cast(json_value('after', '$.price'), dbt.type_numeric()) }} as price,
    {{ json_value('after', '$.currency') }} as currency,
    {{ dbt.safe_cast(json_value('after', '$.active'), dbt.type_boolean()) }} as active,
    {{ parse_iso_timestamp(json_value('after', '$.created_at')) }} as created_at,
    {{ parse_iso_timestamp(json_value('after', '$.updated_at')) }} as updated_at
from current_rows
