{{
    config(
        partition_by=bq_partition_by('cohort_week'),
    )
}}

-- A visitor is the shop user when known, else the anonymous visitor id.
with

visitor_weeks as (
    select distinct
        coalesce(user_id, anonymous_id) as visitor_id,
        {{ week_start('session_date') }} as activity_week
    from {{ ref('int_sessions') }}
),

cohorts as (
    select
        visitor_id,
        min(activity_week) as cohort_week
    from visitor_weeks
    group by visitor_id
),

cohort_sizes as (
    select
        cohort_week,
        count(*) as cohort_users
    from cohorts
    group by cohort_week
),

weeks as (
    select distinct activity_week
    from visitor_weeks
),

cohort_activity as (
    select
        cohorts.cohort_week,
        visitor_weeks.activity_week,
        count(*) as active_users
    from visitor_weeks
    inner join cohorts
        on visitor_weeks.visitor_id = cohorts.visitor_id
    group by cohorts.cohort_week, visitor_weeks.activity_week
)

select
    cohort_sizes.cohort_week,
    {{ dbt.datediff('cohort_sizes.cohort_week', 'weeks.activity_week', 'week') }} as weeks_since_first,
    cohort_sizes.cohort_users,
    coalesce(cohort_activity.active_users, 0) as active_users,
    {{ safe_divide('coalesce(cohort_activity.active_users, 0)', 'cohort_sizes.cohort_users') }} as retention_rate
from cohort_sizes
inner join weeks
    on cohort_sizes.cohort_week <= weeks.activity_week
left join cohort_activity
    on
        cohort_sizes.cohort_week = cohort_activity.cohort_week
        and weeks.activity_week = cohort_activity.activity_week
