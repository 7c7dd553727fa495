with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_order_items')) }}
)

select
    {{ order_item_columns('after') }}
from current_rows
