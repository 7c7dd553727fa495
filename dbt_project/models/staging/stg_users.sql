with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_users')) }}
)

select
    {{ dbt.safe_cast(json_value('after', '$.user_id'), dbt.type_bigint()) }} as user_id,
    {{ json_value('after', '$.email') }} as email,
    {{ json_value('after', '$.full_name') }} as full_name,
    {{ json_value('after', '$.country') }} as country,
    {{ dbt.safe_cast(json_value('after', '$.marketing_opt_in'), dbt.type_boolean()) }} as marketing_opt_in,
    {{ parse_iso_timestamp(json_value('after', '$.created_at')) }} as created_at,
    {{ parse_iso_timestamp(json_value('after', '$.updated_at')) }} as updated_at
from current_rows
