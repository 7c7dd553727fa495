{{
    config(
        partition_by=bq_partition_by('cohort_week'),
    )
}}

-- Weekly retention of sign-up cohorts (ISO weeks, Monday first): a cohort is the current
-- users who signed up in one week, from the first day with sessions on (users who signed
-- up before the data window are in no cohort, their early weeks were never observed); a
-- user is active in a week with a session of theirs. One row per cohort and week since
-- sign-up, up to the week of the latest event received (the collector's clock, which
-- client clocks cannot move).
with

bounds as (
    select
        (select min(session_date) from {{ ref('int_sessions') }}) as first_date,
        (select max(cast(received_at as date)) from {{ ref('stg_events') }}) as as_of_date
),

cohorts as (
    select
        signups.user_id,
        {{ week_start('cast(signups.created_at as date)') }} as cohort_week
    from {{ ref('stg_users') }} as signups
    cross join bounds
    where cast(signups.created_at as date) between bounds.first_date and bounds.as_of_date
),

cohort_sizes as (
    select
        cohort_week,
        count(*) as cohort_users
    from cohorts
    group by cohort_week
),

activity as (
    select distinct
        sessions.user_id,
        {{ week_start('sessions.session_date') }} as activity_week
    from {{ ref('int_sessions') }} as sessions
    cross join bounds
    where sessions.user_id is not null and sessions.session_date <= bounds.as_of_date
),

cohort_bounds as (
    select
        min(cohorts.cohort_week) as first_week,
        {{ week_start('max(bounds.as_of_date)') }} as last_week
    from cohorts
    cross join bounds
),

week_calendar as (
    {{ date_spine_between('cohort_bounds', 'first_week', 'last_week', 'week') }}
),

grid as (
    select
        cohort_sizes.cohort_week,
        cohort_sizes.cohort_users,
        week_calendar.date_day as activity_week
    from cohort_sizes
    inner join week_calendar
        on cohort_sizes.cohort_week <= week_calendar.date_day
),

cohort_activity as (
    select
        cohorts.cohort_week,
        activity.activity_week,
        count(*) as active_users
    from activity
    inner join cohorts
        on activity.user_id = cohorts.user_id
    where activity.activity_week >= cohorts.cohort_week
    group by cohorts.cohort_week, activity.activity_week
)

select
    grid.cohort_week,
    cast({{ integer_divide(days_between('grid.cohort_week', 'grid.activity_week'), 7) }} as {{ dbt.type_bigint() }})
        as weeks_since_first,
    cast(grid.cohort_users as {{ dbt.type_bigint() }}) as cohort_users,
    cast(coalesce(cohort_activity.active_users, 0) as {{ dbt.type_bigint() }}) as active_users,
    {{ safe_divide('coalesce(cohort_activity.active_users, 0)', 'grid.cohort_users') }} as retention_rate
from grid
left join cohort_activity
    on
        grid.cohort_week = cohort_activity.cohort_week
        and grid.activity_week = cohort_activity.activity_week
