"""Referential integrity: non-null keys of a fact must exist in its dimension."""

from __future__ import annotations

from platform_assets.quality.results import CheckResult, fmt
from platform_assets.quality.rules.context import SAMPLE_ROWS, RuleContext, build_result
from platform_assets.quality.specs import References
from platform_assets.quality.warehouse import quote


def check_references(ctx: RuleContext, rule: References) -> CheckResult:
    child = quote(rule.column)
    value = f"try_cast({child} as {rule.cast})" if rule.cast else child
    parent_col = quote(rule.parent_column)
    joined = (
        f"(select {value} as k from {ctx.rel()} where {child} is not null) as child "
        f"left join (select distinct {parent_col} as k from {ctx.rel(rule.parent)} "
        f"where {parent_col} is not null) as parent on child.k = parent.k"
    )
    row = ctx.query(
        f"select count(*) as total, sum(case when parent.k is null then 1 else 0 end) "
        f"as orphans from {joined}"
    )[0]
    total, orphans = int(row["total"] or 0), int(row["orphans"] or 0)
    rate = orphans / total if total else 0.0
    failed = orphans > 0 and rate > rule.max_orphan_rate
    sample = []
    if orphans:
        sample = [
            {rule.column: r["k"], "rows": r["n"]}
            for r in ctx.query(
                f"select child.k as k, count(*) as n from {joined} where parent.k is null "
                f"group by child.k order by n desc limit {SAMPLE_ROWS}"
            )
        ]
    link = f"{ctx.asset.asset}.{rule.column} -> {rule.parent}.{rule.parent_column}"
    tolerance = f" (tolerated up to {rule.max_orphan_rate:.1%})" if rule.max_orphan_rate else ""
    description = (
        f"{fmt(orphans)} of {fmt(total)} rows ({rate:.2%}) have no match in {link}{tolerance}."
        if orphans
        else f"Every {link} has a match ({fmt(total)} rows)."
    )
    return build_result(
        ctx,
        rule,
        rule_type="references",
        failed=failed,
        severity=rule.severity,
        metric="orphan_rate",
        value=round(rate, 5),
        low=0.0,
        high=rule.max_orphan_rate,
        description=description,
        kind="orphans",
        sample=sample,
        details={"orphan_rows": orphans, "rows": total, "parent": rule.parent},
    )
