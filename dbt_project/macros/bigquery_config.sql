{#
    Physical layout in BigQuery: day partitions and clustering. Other adapters get none, so
    models can pass these to config() unconditionally.
#}
{% macro bq_partition_by(field, data_type='date', granularity='day') -%}
    {%- if target.type == 'bigquery' -%}
        {{ return({'field': field, 'data_type': data_type, 'granularity': granularity}) }}
    {%- else -%}
        {{ return(none) }}
    {%- endif -%}
{%- endmacro %}

{% macro bq_cluster_by(columns) -%}
    {%- if target.type == 'bigquery' -%}
        {{ return(columns) }}
    {%- else -%}
        {{ return(none) }}
    {%- endif -%}
{%- endmacro %}
