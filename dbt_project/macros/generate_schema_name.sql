{#
    local and prod build into the custom schema names as they are (staging, mart): the
    DuckDB file and the BigQuery project hold one copy of the warehouse each. Any other
    target (dev, ci, ...) shares a BigQuery project with others, so its schemas are
    prefixed with the target's own dataset: dbt_dev_staging, dbt_dev_mart.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif target.name in ('local', 'prod') -%}
        {{ custom_schema_name | trim }}
    {%- else -%}
        {{ target.schema }}_{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
