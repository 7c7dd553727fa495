{# Whether an existing relation has a column (case-insensitive). For incremental models whose
   watermark column a release adds: the first run after the upgrade rebuilds instead of
   failing on the missing column. False when not executing (parsing). #}
{% macro relation_has_column(relation, column) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {{ return((column | lower) in names) }}
{%- endmacro %}
