"""Validity from the producer's own constraints (SourceConstraints).

The shop database refuses a negative price, an unknown order status, a missing currency;
a dbt contract declares what a model promises. A row that breaks one of those did not come
from the source as it is, or the model broke its promise: every violating row counts, over
the whole (current-state) table. Constraints on columns the table does not have are
reported as not applicable, not as failures.
"""

from __future__ import annotations

from typing import Any

from platform_assets.quality.results import CheckResult, fmt
from platform_assets.quality.rules.context import SAMPLE_ROWS, RuleContext, build_result
from platform_assets.quality.specs import Constraint, SourceConstraints
from platform_assets.quality.warehouse import quote


def violation(constraint: Constraint) -> str:
    """SQL that is true for a row breaking the constraint (NULL satisfies a CHECK)."""
    if constraint.kind == "not_null":
        return f"{quote(constraint.columns[0])} is null"
    return f"not coalesce(({constraint.expression}), true)"


def check_source_constraints(ctx: RuleContext, rule: SourceConstraints) -> CheckResult:
    present = {name for name, _ in ctx.columns()}
    applicable = [c for c in rule.constraints if set(c.columns) <= present]
    skipped = [c.name for c in rule.constraints if c not in applicable]
    counts = _violations(ctx, applicable)
    findings = [
        {
            "constraint": c.name,
            "origin": c.origin,
            "definition": c.definition or c.expression,
            "violations": counts[i],
        }
        for i, c in enumerate(applicable)
    ]
    failing = [(c, f) for c, f in zip(applicable, findings, strict=True) if f["violations"]]
    sample = _sample(ctx, rule, failing[0][0]) if failing else []
    return _verdict(ctx, rule, findings, [f for _, f in failing], skipped, counts, sample)


def _violations(ctx: RuleContext, constraints: list[Constraint]) -> list[int]:
    if not constraints:
        return []
    parts = ", ".join(
        f"sum(case when {violation(c)} then 1 else 0 end) as v{i}"
        for i, c in enumerate(constraints)
    )
    row = ctx.query(f"select count(*) as total, {parts} from {ctx.rel()}")[0]
    return [int(row[f"v{i}"] or 0) for i in range(len(constraints))]


def _sample(ctx: RuleContext, rule: SourceConstraints, constraint: Constraint) -> list[dict]:
    present = {name for name, _ in ctx.columns()}
    shown = [k for k in rule.key if k in present] + [
        c for c in constraint.columns if c not in rule.key
    ]
    return ctx.query(
        f"select {', '.join(quote(c) for c in shown)} from {ctx.rel()} "
        f"where {violation(constraint)} limit {SAMPLE_ROWS}"
    )


def _verdict(
    ctx: RuleContext,
    rule: SourceConstraints,
    findings: list[dict[str, Any]],
    failing: list[dict[str, Any]],
    skipped: list[str],
    counts: list[int],
    sample: list[dict],
) -> CheckResult:
    if failing:
        parts = "; ".join(
            f"{f['constraint']} ({f['definition']}): {fmt(f['violations'])} row(s)" for f in failing
        )
        description = (
            f"Rows of {ctx.asset.asset} that their producer's constraints forbid: {parts}."
        )
    else:
        description = (
            f"Every row of {ctx.asset.asset} satisfies the {len(findings)} constraint(s) its "
            f"producer declares."
        )
    if skipped:
        description += f" Not applicable here: {', '.join(skipped)}."
    return build_result(
        ctx,
        rule,
        rule_type="source_constraints",
        failed=bool(failing),
        severity=rule.severity,
        metric="violating_rows",
        value=float(sum(counts)),
        low=0.0,
        high=0.0,
        description=description,
        kind="constraints:" + ",".join(sorted(f["constraint"] for f in failing)),
        sample=sample,
        details={
            "constraints": findings,
            "not_applicable": skipped,
            "failing_columns": sorted(
                {c for f in failing for c in _columns_of(rule, f["constraint"])}
            ),
        },
    )


def _columns_of(rule: SourceConstraints, name: str) -> tuple[str, ...]:
    return next((c.columns for c in rule.constraints if c.name == name), ())
