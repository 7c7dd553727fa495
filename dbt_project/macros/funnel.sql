{#
    One step of a session's ordered funnel, as a CTE named after the step: the first time
    each session (anonymous_id, session_number) of `funnel_events` had `event_name`, at or
    after the time it reached the step before (the CTE named by `previous_column`).
#}
{% macro funnel_step(previous_column, event_name, column) -%}
{%- set ctes = {'viewed_at': 'viewed', 'added_at': 'added', 'checkout_at': 'checkout', 'payment_at': 'payment', 'ordered_at': 'ordered'} -%}
{{ ctes[column] }} as (
    select
        funnel_events.anonymous_id,
        funnel_events.session_number,
        min(funnel_events.event_timestamp) as {{ column }}
    from funnel_events
    {%- if previous_column is not none %}
    inner join {{ ctes[previous_column] }}
        on
            funnel_events.anonymous_id = {{ ctes[previous_column] }}.anonymous_id
            and funnel_events.session_number = {{ ctes[previous_column] }}.session_number
            and funnel_events.event_timestamp >= {{ ctes[previous_column] }}.{{ previous_column }}
    {%- endif %}
    where funnel_events.event_name = '{{ event_name }}'
    group by funnel_events.anonymous_id, funnel_events.session_number
)
{%- endmacro %}
