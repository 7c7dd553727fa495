"""Every rule: queries that must trigger it and queries that must not.

Written as analysts write them, against the real schema (raw schemas + the dbt project
rendered for BigQuery). Expectations are hand-written: which rule ids fire, never what the
optimizer said last time.
"""

from __future__ import annotations

from typing import Any

import pytest

from platform_assets.genai.sql_optimizer.analysis import build_model
from platform_assets.genai.sql_optimizer.rules import RULE_IDS, RULES, run_rules
from platform_assets.genai.sql_optimizer.safety import parse_read_only

DAY = "order_date = '2026-11-18'"

TRIGGERS: dict[str, list[str]] = {
    "select_star": [
        "select * from mart.fct_orders",
        "select * from staging.stg_events where event_date = '2026-11-15' limit 10",
        f"select o.* from mart.fct_orders o where o.{DAY}",
        f"with o as (select * from mart.fct_orders) select * from o where {DAY}",
    ],
    "missing_partition_filter": [
        "select order_id, total_amount from mart.fct_orders",
        "select event_name, count(*) as events from staging.stg_events group by event_name",
        "select o.order_id from staging.stg_orders s join mart.fct_orders o "
        "on o.order_id = s.order_id where s.status = 'paid'",
        "select count(*) from mart.fct_orders where status = 'paid'",
    ],
    "non_sargable_partition_filter": [
        "select count(*) from mart.fct_orders where extract(year from order_date) = 2026",
        "select count(*) from mart.fct_orders where date_trunc(order_date, month) = '2026-11-01'",
        "select count(*) from staging.stg_events where format_date('%Y-%m', "
        "event_date) = '2026-11'",
        f"select order_id from mart.fct_orders where {DAY} or status = 'paid'",
        "select order_id from mart.fct_orders "
        "where order_date = (select max(order_date) from mart.fct_orders)",
        "select count(*) from staging.stg_events where cast(event_date as string) like '2026-11%'",
    ],
    "unused_cluster_filter": [
        "select count(*) from staging.stg_events "
        "where event_date = '2026-11-15' and lower(event_name) = 'order completed'",
        f"select count(*) from mart.fct_orders where {DAY} and cast(user_id as string) = '251'",
        "select count(*) from staging.stg_events "
        "where event_date = '2026-11-15' and event_name like '%Order%'",
    ],
    "order_by_without_limit": [
        f"select order_id, total_amount from mart.fct_orders where {DAY} order "
        "by total_amount desc",
        f"select order_id from (select order_id, created_at from mart.fct_orders where {DAY} "
        "order by created_at) where order_id > 100",
    ],
    "count_distinct": [
        f"select count(distinct user_id) as buyers from mart.fct_orders where {DAY}",
        f"select status, count(distinct user_id) from mart.fct_orders where {DAY} group by 1",
    ],
    "repeated_scan": [
        f"with o as (select * from mart.fct_orders where {DAY}) "
        "select (select count(*) from o) as orders, (select sum(total_amount) from o) as revenue",
        "select a.anonymous_id from staging.stg_events a join staging.stg_events b "
        "on a.anonymous_id = b.anonymous_id and b.event_date = '2026-11-14' "
        "where a.event_date = '2026-11-15'",
        f"select order_id from mart.fct_orders where {DAY} union all "
        "select order_id from mart.fct_orders where order_date = '2026-11-19'",
    ],
    "cross_join": [
        "select o.order_id, p.sku from mart.fct_orders o cross join "
        f"staging.stg_products p where o.{DAY}",
        f"select o.order_id, u.country from mart.fct_orders o, staging.stg_users u where o.{DAY}",
    ],
    "join_before_aggregate": [
        "select o.status, sum(o.total_amount) as revenue from mart.fct_orders o "
        f"join staging.stg_order_items i on i.order_id = o.order_id where o.{DAY} group by 1",
        "select s.device_type, count(*) from staging.int_sessions s join staging.stg_events e "
        "on e.anonymous_id = s.anonymous_id where s.session_date = '2026-11-15' "
        "and e.event_date = '2026-11-15' group by 1",
    ],
    "nondeterministic": [
        "select count(*) from mart.fct_orders where order_date = current_date()",
        f"select order_id, rand() as r from mart.fct_orders where {DAY}",
        f"select current_timestamp() as at, count(*) from mart.fct_orders where {DAY}",
        f"select generate_uuid() as id from mart.fct_orders where {DAY}",
    ],
    "large_in_subquery": [
        f"select order_id from mart.fct_orders where {DAY} and cast(user_id as string) in "
        "(select user_id from staging.stg_events where event_name = 'Order Completed')",
        "select user_id from staging.stg_users where user_id not in "
        "(select user_id from staging.stg_orders)",
    ],
}

QUIET: dict[str, list[str]] = {
    "select_star": [
        "with o as (select * from mart.fct_orders) select order_id, "
        f"total_amount from o where {DAY}",
        f"select count(*) from mart.fct_orders where {DAY}",
        "select * except (payload) from raw.events where event_date = '2026-11-15'",
        f"select order_id from (select * from mart.fct_orders) where {DAY}",
    ],
    "missing_partition_filter": [
        "select order_id from mart.fct_orders where order_date >= '2026-11-15'",
        "with daily as (select order_date, count(*) as orders from mart.fct_orders group by 1) "
        "select * from daily where order_date = '2026-11-15'",
        "select count(*) from mart.fct_orders",
        "select * from staging.stg_orders",
        "select count(*) from mart.fct_orders where extract(year from order_date) = 2026",
        "select event_name from staging.stg_events "
        "where event_date >= date_sub(current_date(), interval 7 day)",
    ],
    "non_sargable_partition_filter": [
        "select order_id from mart.fct_orders where order_date between "
        "'2026-11-01' and '2026-11-30'",
        "select order_id from mart.fct_orders where order_date in ('2026-11-15', '2026-11-16')",
        "select order_id from mart.fct_orders "
        "where (order_date = '2026-11-15' or order_date = '2026-11-16') and status = 'paid'",
        "select order_id from mart.fct_orders where order_date >= "
        "date_sub(current_date(), interval 7 day)",
        "select order_id from mart.fct_orders "
        "where extract(dayofweek from order_date) = 1 and order_date >= '2026-11-01'",
        "select order_id from mart.fct_orders",
    ],
    "unused_cluster_filter": [
        "select count(*) from staging.stg_events "
        "where event_date = '2026-11-15' and event_name = 'Order Completed'",
        "select count(*) from staging.stg_events where event_date = '2026-11-15' "
        "and event_name in ('Product Viewed', 'Product Added')",
        "select count(*) from staging.stg_events "
        "where event_date = '2026-11-15' and event_name like 'Product%'",
        "select count(*) from staging.stg_events "
        "where event_date = '2026-11-15' and lower(page_path) = '/cart'",
    ],
    "order_by_without_limit": [
        f"select order_id, total_amount from mart.fct_orders where {DAY} order "
        "by total_amount desc limit 10",
        f"select status, count(*) as orders from mart.fct_orders where {DAY} "
        "group by 1 order by 2 desc",
        "select order_id, row_number() over (order by created_at) as n from "
        f"mart.fct_orders where {DAY}",
        "select array(select x from unnest([3, 1, 2]) as x order by x) as sorted",
    ],
    "count_distinct": [
        f"select count(user_id) from mart.fct_orders where {DAY}",
        f"select approx_count_distinct(user_id) from mart.fct_orders where {DAY}",
        f"select distinct user_id from mart.fct_orders where {DAY}",
    ],
    "repeated_scan": [
        f"select count(*) as orders, sum(total_amount) as revenue from mart.fct_orders where {DAY}",
        "select o.order_id, u.country from mart.fct_orders o join staging.stg_users u "
        f"on u.user_id = o.user_id where o.{DAY}",
    ],
    "cross_join": [
        f"select o.order_id, u.country from mart.fct_orders o, staging.stg_users u "
        f"where u.user_id = o.user_id and o.{DAY}",
        "select o.order_id, o.total_amount / t.revenue as share from mart.fct_orders o cross join "
        f"(select sum(total_amount) as revenue from mart.fct_orders where {DAY}) t where o.{DAY}",
        "select e.message_id, tag from staging.stg_events e cross join unnest(['a', 'b']) as tag "
        "where e.event_date = '2026-11-15'",
    ],
    "join_before_aggregate": [
        "select p.category, sum(i.quantity) as units from staging.stg_order_items i "
        "join staging.stg_products p on p.product_id = i.product_id group by 1",
        "select o.status, sum(l.units) as units from mart.fct_orders o join (select order_id, "
        "sum(quantity) as units from staging.stg_order_items group by order_id) l "
        f"on l.order_id = o.order_id where o.{DAY} group by 1",
        "select o.order_id, i.quantity from mart.fct_orders o "
        f"join staging.stg_order_items i on i.order_id = o.order_id where o.{DAY}",
    ],
    "nondeterministic": [
        "select count(*) from mart.fct_orders where order_date = date '2026-11-20'",
    ],
    "large_in_subquery": [
        "select product_id from staging.stg_order_items where product_id in "
        "(select product_id from staging.stg_products where category = 'shoes')",
        f"select order_id from mart.fct_orders where {DAY} and status in ('paid', 'shipped')",
        f"select order_id from mart.fct_orders where {DAY} and cast(user_id as string) in "
        "(select distinct user_id from staging.stg_events where event_name = 'Order Completed')",
        f"select order_id from mart.fct_orders o where o.{DAY} and exists (select 1 from "
        "staging.stg_events e where e.user_id = cast(o.user_id as string))",
    ],
}


def rules_found(sql: str, schema: Any) -> set[str]:
    return {f.rule for f in run_rules(build_model(parse_read_only(sql), schema))}


def test_every_rule_id_of_the_issue_exists_and_is_tested() -> None:
    assert RULE_IDS == (
        "select_star", "missing_partition_filter", "non_sargable_partition_filter",
        "unused_cluster_filter", "order_by_without_limit", "count_distinct", "repeated_scan",
        "cross_join", "join_before_aggregate", "nondeterministic", "large_in_subquery",
    )  # fmt: skip
    assert set(TRIGGERS) == set(QUIET) == set(RULES)


@pytest.mark.parametrize(
    ("rule", "sql"), [(rule, sql) for rule, cases in TRIGGERS.items() for sql in cases]
)
def test_rule_triggers(rule: str, sql: str, warehouse_schema: Any) -> None:
    assert rule in rules_found(sql, warehouse_schema)


@pytest.mark.parametrize(
    ("rule", "sql"), [(rule, sql) for rule, cases in QUIET.items() for sql in cases]
)
def test_rule_stays_quiet(rule: str, sql: str, warehouse_schema: Any) -> None:
    assert rule not in rules_found(sql, warehouse_schema)


def test_findings_carry_the_line_the_analyst_wrote(warehouse_schema: Any) -> None:
    sql = (
        "-- revenue of November's web orders\n"
        "select\n"
        "    status,\n"
        "    count(distinct user_id) as buyers\n"
        "from mart.fct_orders\n"
        "where extract(year from order_date) = 2026\n"
        "group by status\n"
    )
    findings = run_rules(build_model(parse_read_only(sql), warehouse_schema))
    lines = {f.rule: f.line for f in findings}
    assert lines == {"count_distinct": 4, "non_sargable_partition_filter": 6}
    assert all(f.message and f.fix for f in findings)


def test_a_filter_through_a_cte_is_the_table_s_filter(warehouse_schema: Any) -> None:
    """BigQuery pushes the outer filter into the CTE: the scan is pruned, nothing to report."""
    sql = (
        "with orders as (select * from mart.fct_orders)\n"
        "select status, sum(total_amount) as revenue from orders\n"
        "where order_date between '2026-11-15' and '2026-11-16' group by status"
    )
    assert rules_found(sql, warehouse_schema) == set()


def test_a_timestamp_filter_is_named_as_implying_the_partition(warehouse_schema: Any) -> None:
    sql = "select order_id from mart.fct_orders where created_at >= '2026-11-18'"
    [finding] = run_rules(build_model(parse_read_only(sql), warehouse_schema))
    assert finding.rule == "missing_partition_filter"
    assert "`order_date` is its UTC date" in finding.message
