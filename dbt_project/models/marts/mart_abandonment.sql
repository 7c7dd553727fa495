{{
    config(
        partition_by=bq_partition_by('session_date'),
    )
}}

{%- set recovery_days = var('cart_recovery_days', 7) | int %}

-- Cart and checkout abandonment per UTC day of the session start. A cart (checkout) is
-- abandoned when its session added to the cart (started checkout) and completed no order;
-- it is recovered when the same visitor completed an order in a later session that started
-- within cart_recovery_days (default 7) of it.
with

sessions as (
    select * from {{ ref('int_sessions') }}
),

abandoned as (
    select
        session_id,
        anonymous_id,
        session_number,
        session_start
    from sessions
    where has_add_to_cart and not has_order
),

recovered as (
    select distinct abandoned.session_id
    from abandoned
    inner join sessions as later
        on
            abandoned.anonymous_id = later.anonymous_id
            and abandoned.session_number < later.session_number
            and {{ timestamp_add_days('abandoned.session_start', recovery_days) }} >= later.session_start
    where later.has_order
)

select
    sessions.session_date,
    cast(count(case when sessions.has_add_to_cart then 1 end) as {{ dbt.type_bigint() }}) as cart_sessions,
    cast(count(case when sessions.has_add_to_cart and not sessions.has_order then 1 end) as {{ dbt.type_bigint() }})
        as abandoned_carts,
    cast(count(recovered.session_id) as {{ dbt.type_bigint() }}) as recovered_carts,
    {{ safe_divide(
        'count(case when sessions.has_add_to_cart and not sessions.has_order then 1 end)',
        'count(case when sessions.has_add_to_cart then 1 end)'
    ) }} as cart_abandonment_rate,
    cast(count(case when sessions.has_checkout then 1 end) as {{ dbt.type_bigint() }}) as checkout_sessions,
    cast(count(case when sessions.has_checkout and not sessions.has_order then 1 end) as {{ dbt.type_bigint() }})
        as abandoned_checkouts,
    {{ safe_divide(
        'count(case when sessions.has_checkout and not sessions.has_order then 1 end)',
        'count(case when sessions.has_checkout then 1 end)'
    ) }} as checkout_abandonment_rate
from sessions
left join recovered
    on sessions.session_id = recovered.session_id
group by sessions.session_date
