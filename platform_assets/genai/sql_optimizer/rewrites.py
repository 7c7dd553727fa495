"""Rule rewrites: which rule each fixes, and how they are applied one after another.

A rewrite changes the analyst's own query tree (see `analysis.QueryModel.original`), so the
result reads like what they wrote. Rewrites are applied in turn, each on a fresh model of
the query the previous one left; each is an equivalence, and the verifier checks the result
on the local warehouse all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from platform_assets.genai.sql_optimizer.analysis import QueryModel, build_model
from platform_assets.genai.sql_optimizer.rewrite_partitions import (
    rewrite_derived_partition,
    rewrite_partition_functions,
)
from platform_assets.genai.sql_optimizer.rewrite_scans import (
    rewrite_grand_total,
    rewrite_scalar_subqueries,
)
from platform_assets.genai.sql_optimizer.schema import WarehouseSchema

DIALECT = "bigquery"

# (rule id it fixes, rewrite) in the order they are tried
REWRITES: tuple[tuple[str, Callable[[QueryModel], bool]], ...] = (
    ("non_sargable_partition_filter", rewrite_partition_functions),
    ("missing_partition_filter", rewrite_derived_partition),
    ("repeated_scan", rewrite_scalar_subqueries),
    ("repeated_scan", rewrite_grand_total),
)
REWRITABLE = frozenset(rule for rule, _ in REWRITES)


@dataclass
class RuleRewrite:
    sql: str
    tree: exp.Expression
    fixes: tuple[str, ...]


def render(tree: exp.Expression) -> str:
    return tree.sql(dialect=DIALECT, pretty=True)


def rule_rewrite(
    original: exp.Expression, schema: WarehouseSchema, rules_found: set[str]
) -> RuleRewrite | None:
    """Every applicable rewrite for the rules that fired, applied in turn; None if none."""
    candidate = original.copy()
    fixes: list[str] = []
    for rule, rewrite in REWRITES:
        if rule not in rules_found:
            continue
        model = build_model(candidate, schema)  # re-tags `candidate` in place
        if rewrite(model):
            fixes.append(rule)
    if not fixes:
        return None
    return RuleRewrite(render(candidate), candidate, tuple(dict.fromkeys(fixes)))
