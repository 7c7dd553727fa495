{#
    Dialect differences between DuckDB (local) and BigQuery (production), dispatched on the
    adapter, written so that both engines give the same values, not merely valid SQL:
    tests build the DuckDB side on simulated data; the BigQuery side is compiled offline and
    type-checked (tests/platform_assets/test_bigquery_render.py). dbt's own cross-database
    macros are used where they agree on both engines (dbt.type_*, dbt.hash, dbt.bool_or,
    dbt.concat); not dbt.dateadd (a DATETIME in BigQuery, which cannot be compared with a
    TIMESTAMP), dbt.datediff (counts boundaries, not elapsed time) or dbt.safe_cast to an
    integer (DuckDB's TRY_CAST('2.7' AS INTEGER) is 3, BigQuery's SAFE_CAST is NULL).
#}

{# ---- JSON ------------------------------------------------------------------------------ #}

{#
    A scalar at a JSONPath of a JSON string, as a string; null when absent, JSON null, or an
    object or array (BigQuery's JSON_VALUE; DuckDB's json_extract_string would return the
    object's JSON text).
#}
{% macro json_value(json_string, path) -%}
    {{ return(adapter.dispatch('json_value', 'ecommerce')(json_string, path)) }}
{%- endmacro %}

{% macro default__json_value(json_string, path) -%}
    case
        when json_type({{ json_string }}, '{{ path }}') in ('OBJECT', 'ARRAY') then null
        else json_extract_string({{ json_string }}, '{{ path }}')
    end
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


{# ---- parsing text ---------------------------------------------------------------------- #}

{#
    A string as a 64-bit integer: only an optionally signed run of digits parses ('17',
    ' 17 ', '-3'); '2.7', '1e3', '' and anything else are null on both engines.
#}
{% macro parse_integer(text) -%}
    {{ return(adapter.dispatch('parse_integer', 'ecommerce')(text)) }}
{%- endmacro %}

{% macro default__parse_integer(text) -%}
    case
        when regexp_full_match(trim({{ text }}), '[+-]?[0-9]{1,18}')
            then cast(trim({{ text }}) as bigint)
    end
{%- endmacro %}

{% macro bigquery__parse_integer(text) -%}
    case
        when regexp_contains(trim({{ text }}), r'^[+-]?[0-9]{1,18}$')
            then safe_cast(trim({{ text }}) as int64)
    end
{%- endmacro %}


{#
    A string as a decimal number (NUMERIC in BigQuery, DECIMAL(28,6) in DuckDB); null when
    it is not one. Amounts in this project have at most 6 decimal places, which both keep.
#}
{% macro parse_decimal(text) -%}
    {{ return(adapter.dispatch('parse_decimal', 'ecommerce')(text)) }}
{%- endmacro %}

{% macro default__parse_decimal(text) -%}
    try_cast({{ text }} as {{ dbt.type_numeric() }})
{%- endmacro %}

{% macro bigquery__parse_decimal(text) -%}
    safe_cast({{ text }} as numeric)
{%- endmacro %}


{# A string as a boolean ('true'/'false', any case); null otherwise. #}
{% macro parse_boolean(text) -%}
    case lower(trim({{ text }})) when 'true' then true when 'false' then false end
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


{# ---- types ----------------------------------------------------------------------------- #}

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


{# Money in the marts: two decimal places (cents). #}
{% macro type_money() -%}
    {{ return(adapter.dispatch('type_money', 'ecommerce')()) }}
{%- endmacro %}

{% macro default__type_money() -%}
    decimal(18, 2)
{%- endmacro %}

{% macro bigquery__type_money() -%}
    numeric
{%- endmacro %}


{# An amount rounded half away from zero to cents, as money (exact on both engines). #}
{% macro to_money(amount) -%}
    cast(round({{ amount }}, 2) as {{ type_money() }})
{%- endmacro %}


{# ---- arithmetic ------------------------------------------------------------------------ #}

{#
    A ratio as a 64-bit float (rates, shares); null when the denominator is 0 or null. Both
    operands are converted to float first, so integer and decimal inputs divide the same way
    on both engines (BigQuery divides NUMERIC exactly, DuckDB returns a DOUBLE).
#}
{% macro safe_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('safe_divide', 'ecommerce')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__safe_divide(numerator, denominator) -%}
    cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0)
{%- endmacro %}

{% macro bigquery__safe_divide(numerator, denominator) -%}
    safe_divide(cast({{ numerator }} as float64), cast({{ denominator }} as float64))
{%- endmacro %}


{#
    An amount of money divided by a count (an average order value), rounded half away from
    zero to cents, as money; null when the count is 0 or null. Computed in integer cents,
    so it is exact on both engines: DuckDB would divide a DECIMAL into a DOUBLE (80.125 ->
    80.12), BigQuery a NUMERIC exactly (80.125 -> 80.13).
#}
{% macro divide_money(amount, count) -%}
    case
        when {{ count }} > 0 then
            cast(
                cast(
                    sign({{ amount }}) * {{ integer_divide(
                        '2 * abs(cast(round(' ~ amount ~ ' * 100, 0) as ' ~ dbt.type_bigint() ~ ')) + ' ~ count,
                        '2 * ' ~ count
                    ) }} as {{ type_money() }}
                ) * 0.01 as {{ type_money() }}
            )
    end
{%- endmacro %}


{# Integer division of non-negative integers, truncated. #}
{% macro integer_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('integer_divide', 'ecommerce')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__integer_divide(numerator, denominator) -%}
    (({{ numerator }}) // ({{ denominator }}))
{%- endmacro %}

{% macro bigquery__integer_divide(numerator, denominator) -%}
    div({{ numerator }}, {{ denominator }})
{%- endmacro %}


{# ---- time ------------------------------------------------------------------------------ #}

{# A timestamp plus a number of minutes, still a TIMESTAMP on both engines. #}
{% macro timestamp_add_minutes(timestamp_expression, minutes) -%}
    {{ return(adapter.dispatch('timestamp_add_minutes', 'ecommerce')(timestamp_expression, minutes)) }}
{%- endmacro %}

{% macro default__timestamp_add_minutes(timestamp_expression, minutes) -%}
    ({{ timestamp_expression }} + to_minutes(cast({{ minutes }} as bigint)))
{%- endmacro %}

{% macro bigquery__timestamp_add_minutes(timestamp_expression, minutes) -%}
    timestamp_add({{ timestamp_expression }}, interval {{ minutes }} minute)
{%- endmacro %}


{# A timestamp plus a number of days, still a TIMESTAMP on both engines. #}
{% macro timestamp_add_days(timestamp_expression, days) -%}
    {{ timestamp_add_minutes(timestamp_expression, '(' ~ days ~ ') * 1440') }}
{%- endmacro %}


{# Microseconds since 1970-01-01 00:00:00 UTC of a timestamp (a 64-bit integer). #}
{% macro epoch_microseconds(timestamp_expression) -%}
    {{ return(adapter.dispatch('epoch_microseconds', 'ecommerce')(timestamp_expression)) }}
{%- endmacro %}

{% macro default__epoch_microseconds(timestamp_expression) -%}
    epoch_us({{ timestamp_expression }})
{%- endmacro %}

{% macro bigquery__epoch_microseconds(timestamp_expression) -%}
    unix_micros({{ timestamp_expression }})
{%- endmacro %}


{# Elapsed microseconds from one timestamp to another (exact, not boundaries crossed). #}
{% macro microseconds_between(start_timestamp, end_timestamp) -%}
    {{ return(adapter.dispatch('microseconds_between', 'ecommerce')(start_timestamp, end_timestamp)) }}
{%- endmacro %}

{% macro default__microseconds_between(start_timestamp, end_timestamp) -%}
    (epoch_us({{ end_timestamp }}) - epoch_us({{ start_timestamp }}))
{%- endmacro %}

{% macro bigquery__microseconds_between(start_timestamp, end_timestamp) -%}
    timestamp_diff({{ end_timestamp }}, {{ start_timestamp }}, microsecond)
{%- endmacro %}


{# Elapsed hours from one timestamp to another, as a 64-bit float. #}
{% macro hours_between(start_timestamp, end_timestamp) -%}
    (cast({{ microseconds_between(start_timestamp, end_timestamp) }} as {{ type_double() }}) / 3600000000.0)
{%- endmacro %}


{# Days from one date to another (an integer). #}
{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between', 'ecommerce')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__days_between(start_date, end_date) -%}
    date_diff('day', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{% macro bigquery__days_between(start_date, end_date) -%}
    date_diff({{ end_date }}, {{ start_date }}, day)
{%- endmacro %}


{# Calendar months from one month's first day to another's (an integer). #}
{% macro months_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('months_between', 'ecommerce')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__months_between(start_date, end_date) -%}
    date_diff('month', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{% macro bigquery__months_between(start_date, end_date) -%}
    date_diff({{ end_date }}, {{ start_date }}, month)
{%- endmacro %}


{# A date plus a number of days, as a date. #}
{% macro date_add_days(date_expression, days) -%}
    {{ return(adapter.dispatch('date_add_days', 'ecommerce')(date_expression, days)) }}
{%- endmacro %}

{% macro default__date_add_days(date_expression, days) -%}
    cast({{ date_expression }} + to_days(cast({{ days }} as integer)) as date)
{%- endmacro %}

{% macro bigquery__date_add_days(date_expression, days) -%}
    date_add({{ date_expression }}, interval {{ days }} day)
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


{# The first day of the month of a date, as a date. #}
{% macro month_start(date_expression) -%}
    {{ return(adapter.dispatch('month_start', 'ecommerce')(date_expression)) }}
{%- endmacro %}

{% macro default__month_start(date_expression) -%}
    cast(date_trunc('month', {{ date_expression }}) as date)
{%- endmacro %}

{% macro bigquery__month_start(date_expression) -%}
    date_trunc({{ date_expression }}, month)
{%- endmacro %}


{#
    One row per day (step 'day') or per month (step 'month', from first days of months) from
    start_column to end_column (inclusive) of each row of a relation (usually a one-row CTE
    of bounds); no row when a bound is null. The column is date_day. dbt.date_spine needs a
    query at compile time, which rules out offline compilation.
#}
{% macro date_spine_between(relation, start_column, end_column, step='day') -%}
    {{ return(adapter.dispatch('date_spine_between', 'ecommerce')(relation, start_column, end_column, step)) }}
{%- endmacro %}

{% macro default__date_spine_between(relation, start_column, end_column, step) -%}
    select cast(unnest(generate_series({{ start_column }}, {{ end_column }}, interval 1 {{ step }})) as date) as date_day
    from {{ relation }}
{%- endmacro %}

{% macro bigquery__date_spine_between(relation, start_column, end_column, step) -%}
    select date_day
    from {{ relation }}
    cross join unnest(generate_date_array({{ start_column }}, {{ end_column }}, interval 1 {{ step }})) as date_day
{%- endmacro %}
