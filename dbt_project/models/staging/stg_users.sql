with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_users')) }}
)

select
    {{ user_columns('after') }}
from current_rows
