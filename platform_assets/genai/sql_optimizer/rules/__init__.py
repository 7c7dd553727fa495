"""The optimizer's rules: one function per rule id, each `QueryModel -> list[Finding]`.

Rule ids are a stable interface (tools filter on them):

| id | finds |
| --- | --- |
| select_star | the result carries every column of what it reads |
| missing_partition_filter | a partitioned table read without a filter on its partition column |
| non_sargable_partition_filter | a partition filter that cannot prune (function, OR, subquery) |
| unused_cluster_filter | a filter on a clustering column that block pruning cannot use |
| order_by_without_limit | a whole result sorted without LIMIT, or a subquery's sort thrown away |
| count_distinct | an exact distinct count where an approximation may do (an option) |
| repeated_scan | one table scanned several times (CTEs count once per reference) |
| cross_join | every row paired with every row |
| join_before_aggregate | a join that multiplies rows before a GROUP BY that could aggregate first |
| nondeterministic | functions that keep the query out of BigQuery's cache |
| large_in_subquery | `IN (SELECT ...)` over a large table where a semi-join is meant |
"""

from __future__ import annotations

from platform_assets.genai.sql_optimizer.analysis import QueryModel
from platform_assets.genai.sql_optimizer.report import Finding
from platform_assets.genai.sql_optimizer.rules.base import Rule
from platform_assets.genai.sql_optimizer.rules.joins import (
    join_before_aggregate,
    large_in_subquery,
    repeated_scan,
)
from platform_assets.genai.sql_optimizer.rules.partitions import (
    missing_partition_filter,
    non_sargable_partition_filter,
    unused_cluster_filter,
)
from platform_assets.genai.sql_optimizer.rules.shape import (
    count_distinct,
    cross_join,
    nondeterministic,
    order_by_without_limit,
    select_star,
)

RULES: dict[str, Rule] = {
    rule.__name__: rule
    for rule in (
        select_star,
        missing_partition_filter,
        non_sargable_partition_filter,
        unused_cluster_filter,
        order_by_without_limit,
        count_distinct,
        repeated_scan,
        cross_join,
        join_before_aggregate,
        nondeterministic,
        large_in_subquery,
    )
}
RULE_IDS = tuple(RULES)


def run_rules(model: QueryModel) -> list[Finding]:
    """Every rule's findings, in source order (then rule order)."""
    findings = [f for rule in RULES.values() for f in rule(model)]
    return sorted(findings, key=lambda f: (f.line or 0, RULE_IDS.index(f.rule)))
