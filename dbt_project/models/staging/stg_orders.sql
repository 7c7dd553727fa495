with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_orders')) }}
)

select
    {{ order_columns('after') }}
from current_rows
