{#
    The shop's rows, typed from a CDC row image (`after` or `before` JSON): one macro per
    source table, shared by the current-state models, the history and the facts, so a column
    means the same everywhere. Integers through parse_integer, amounts through
    parse_decimal, times through parse_iso_timestamp (see cross_db.sql).
#}

{% macro order_columns(image) -%}
    {{ parse_integer(json_value(image, '$.order_id')) }} as order_id,
    {{ parse_integer(json_value(image, '$.user_id')) }} as user_id,
    {{ json_value(image, '$.status') }} as status,
    {{ json_value(image, '$.currency') }} as currency,
    {{ parse_decimal(json_value(image, '$.subtotal')) }} as subtotal,
    {{ parse_decimal(json_value(image, '$.shipping')) }} as shipping,
    {{ parse_decimal(json_value(image, '$.total_amount')) }} as total_amount,
    {{ parse_iso_timestamp(json_value(image, '$.created_at')) }} as created_at,
    {{ parse_iso_timestamp(json_value(image, '$.updated_at')) }} as updated_at,
    {{ parse_iso_timestamp(json_value(image, '$.paid_at')) }} as paid_at,
    {{ parse_iso_timestamp(json_value(image, '$.refunded_at')) }} as refunded_at
{%- endmacro %}


{% macro order_item_columns(image) -%}
    {{ parse_integer(json_value(image, '$.order_id')) }} as order_id,
    {{ parse_integer(json_value(image, '$.line_number')) }} as line_number,
    {{ parse_integer(json_value(image, '$.product_id')) }} as product_id,
    {{ parse_integer(json_value(image, '$.quantity')) }} as quantity,
    {{ parse_decimal(json_value(image, '$.unit_price')) }} as unit_price
{%- endmacro %}


{% macro product_columns(image) -%}
    {{ parse_integer(json_value(image, '$.product_id')) }} as product_id,
    {{ json_value(image, '$.sku') }} as sku,
    {{ json_value(image, '$.name') }} as name,
    {{ json_value(image, '$.category') }} as category,
    {{ json_value(image, '$.brand') }} as brand,
    {{ parse_decimal(json_value(image, '$.price')) }} as price,
    {{ json_value(image, '$.currency') }} as currency,
    {{ parse_boolean(json_value(image, '$.active')) }} as active,
    {{ parse_iso_timestamp(json_value(image, '$.created_at')) }} as created_at,
    {{ parse_iso_timestamp(json_value(image, '$.updated_at')) }} as updated_at
{%- endmacro %}


{% macro user_columns(image) -%}
    {{ parse_integer(json_value(image, '$.user_id')) }} as user_id,
    {{ json_value(image, '$.email') }} as email,
    {{ json_value(image, '$.full_name') }} as full_name,
    {{ json_value(image, '$.country') }} as country,
    {{ parse_boolean(json_value(image, '$.marketing_opt_in')) }} as marketing_opt_in,
    {{ parse_iso_timestamp(json_value(image, '$.created_at')) }} as created_at,
    {{ parse_iso_timestamp(json_value(image, '$.updated_at')) }} as updated_at
{%- endmacro %}
