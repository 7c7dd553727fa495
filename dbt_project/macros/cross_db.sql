{#
    Dialect differences between DuckDB (local) and BigQuery (production), dispatched on the
    adapter. dbt's own cross-database macros (dbt.safe_cast, dbt.type_*, dbt.datediff, ...)
    are used directly in the models where they exist; these cover what they do not.
#}

{# A scalar at a JSONPath of a JSON string, as a string (null when absent or JSON null). #}
{% macro json_value(json_string, path) -%}
    {{ return(adapter.dispatch('json_value', 'ecommerce')(json_string, path)) }}
{%- endmacro %}

{% macro default__json_value(json_string, path) -%}
    json_extract_string({{ json_string }}, '{{ path }}')
{%- endmacro %}

{% macro bigquery__json_value(json_string, path) -%}
    json_value({{ json_string }}, '{{ path }}')
{%- endmacro %}


{# An object or array at a JSONPath of a JSON string, as a JSON string. #}
{% macro json_query(json_string, path) -%}
    {{ return(adapter.dispatch('json_query', 'ecommerce')(json_string, path)) }}
{%- endmacro %}

{% macro default__json_query(json_string, path) -%}
    cast(json_extract({{ json_string }}, '{{ path }}') as varchar)
{%- endmacro %}

{% macro bigquery__json_query(json_string, path) -%}
    json_query({{ json_string }}, '{{ path }}')
{%- endmacro %}


{#
    An RFC 3339 / ISO 8601 string ("2026-11-01T10:00:00.123456Z", any offset) as a UTC
    timestamp; null when it is not one. Locally timestamps are naive UTC (the raw layer's
    convention), in BigQuery TIMESTAMP is absolute.
#}
{% macro parse_iso_timestamp(text) -%}
    {{ return(adapter.dispatch('parse_iso_timestamp', 'ecommerce')(text)) }}
{%- endmacro %}

{% macro default__parse_iso_timestamp(text) -%}
    cast(try_cast({{ text }} as timestamptz) at time zone 'UTC' as timestamp)
{%- endmacro %}

{% macro bigquery__parse_iso_timestamp(text) -%}
    safe_cast({{ text }} as timestamp)
{%- endmacro %}


{# 64-bit floating point (dbt.type_float() is 32-bit on DuckDB). #}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'ecommerce')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double
{%- endmacro %}

{% macro bigquery__type_double() -%}
    float64
{%- endmacro %}


{#
    Monday of the ISO week of a date, as a date. (dbt.date_trunc('week', ...) starts weeks on
    Monday in DuckDB but on Sunday in BigQuery and returns a timestamp there.)
#}
{% macro week_start(date_expression) -%}
    {{ return(adapter.dispatch('week_start', 'ecommerce')(date_expression)) }}
{%- endmacro %}

{% macro default__week_start(date_expression) -%}
    cast(date_trunc('week', {{ date_expression }}) as date)
{%- endmacro %}

{% macro bigquery__week_start(date_expression) -%}
    date_trunc({{ date_expression }}, isoweek)
{%- endmacro %}


{#
    One row per day from start_column to end_column (inclusive) of each row of a relation
    (usually a one-row CTE of bounds); no row when a bound is null. The column is date_day.
    dbt.date_spine needs a query at compile time, which rules out offline compilation.
#}
{% macro date_spine_between(relation, start_column, end_column) -%}
    {{ return(adapter.dispatch('date_spine_between', 'ecommerce')(relation, start_column, end_column)) }}
{%- endmacro %}

{% macro default__date_spine_between(relation, start_column, end_column) -%}
    select cast(unnest(generate_series({{ start_column }}, {{ end_column }}, interval 1 day)) as date) as date_day
    from {{ relation }}
{%- endmacro %}

{% macro bigquery__date_spine_between(relation, start_column, end_column) -%}
    select date_day
    from {{ relation }}
    cross join unnest(generate_date_array({{ start_column }}, {{ end_column }})) as date_day
{%- endmacro %}


{# numerator / denominator, null when the denominator is 0 or null. #}
{% macro safe_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('safe_divide', 'ecommerce')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_divide(numerator, denominator) -%}
    ({{ numerator }}) / nullif({{ denominator }}, 0)
{%- endmacro %}

{% macro bigquery__safe_divide(numerator, denominator) -%}
    safe_divide({{ numerator }}, {{ denominator }})
{%- endmacro %}
