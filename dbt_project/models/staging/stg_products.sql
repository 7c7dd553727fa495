with

current_rows as (
    {{ cdc_current_state(source('raw', 'cdc_products')) }}
)

select
    {{ product_columns('after') }}
from current_rows
