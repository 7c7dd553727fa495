-- Every order ever captured, current or since deleted from the source (cancelled orders are
-- purged a few days later): its latest row image and whether it still exists.
with

images as (
    {{ cdc_latest_images(source('raw', 'cdc_orders')) }}
)

select
    {{ order_columns('after') }},
    is_current as is_in_source,
    removed_lsn
from images
