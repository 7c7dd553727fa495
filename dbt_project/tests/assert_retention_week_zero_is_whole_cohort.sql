-- every visitor is active in the week of their first session
select *
from {{ ref('mart_retention_cohorts') }}
where weeks_since_first = 0 and active_users != cohort_users
