"""Null rate per column: the day's rate against its baseline, or the whole table against a limit."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from platform_assets.quality.results import CheckResult
from platform_assets.quality.rules.context import (
    RECENT_DAYS,
    SAMPLE_ROWS,
    RuleContext,
    as_date,
    as_day_expr,
    build_result,
    date_literal,
    not_judged,
)
from platform_assets.quality.specs import AssetQuality, NullRate
from platform_assets.quality.stats import rate_baseline
from platform_assets.quality.warehouse import quote


def _key_columns(asset: AssetQuality) -> tuple[str, ...]:
    return asset.duplicates.key if asset.duplicates else ()


def check_nulls(ctx: RuleContext, rule: NullRate) -> CheckResult:
    counts = ", ".join(
        f"sum(case when {quote(c)} is null then 1 else 0 end) as {quote('n_' + c)}"
        for c in rule.columns
    )
    if rule.date_column is None:
        return _nulls_static(ctx, rule, counts)
    start = ctx.day - timedelta(days=rule.training_days)
    day_expr = as_day_expr(rule.date_column)
    rows = ctx.query(
        f"select {day_expr} as day, count(*) as total, {counts} from {ctx.rel()} "
        f"where {day_expr} between {date_literal(start)} and {date_literal(ctx.day)} "
        f"group by {day_expr}"
    )
    by_day = {as_date(r["day"]): r for r in rows if r["total"]}
    today = by_day.get(ctx.day)
    columns: list[dict[str, Any]] = []
    for column in rule.columns:
        training = [r["n_" + column] / r["total"] for d, r in sorted(by_day.items()) if d < ctx.day]
        rate = today["n_" + column] / today["total"] if today else None
        baseline = rate_baseline(
            training,
            sensitivity=rule.sensitivity,
            min_points=rule.min_training_points,
            min_abs_change=rule.min_abs_change,
        )
        upper = baseline.upper if baseline else None
        columns.append(
            {
                "column": column,
                "null_rate": None if rate is None else round(rate, 4),
                "baseline": None if baseline is None else round(baseline.median, 4),
                "upper": None if upper is None else round(upper, 4),
                "failed": rate is not None and upper is not None and rate > upper,
            }
        )
    recent = [
        {"day": d, **{f"null_rate({c})": round(r["n_" + c] / r["total"], 4) for c in rule.columns}}
        for d, r in sorted(by_day.items())[-RECENT_DAYS:]
    ]
    judged = [c for c in columns if c["upper"] is not None and c["null_rate"] is not None]
    if not judged:
        reason = "no rows that day" if today is None else "not enough training days"
        return not_judged(
            ctx,
            rule,
            rule_type="null_rate",
            metric="null_rate",
            value=None,
            description=f"Null rates of {ctx.asset.asset} on {ctx.day} not judged: {reason}.",
            recent=recent,
            details={"day": ctx.day, "columns": columns},
        )
    return _nulls_verdict(ctx, rule, columns, recent, day=ctx.day)


def _nulls_static(ctx: RuleContext, rule: NullRate, counts: str) -> CheckResult:
    row = ctx.query(f"select count(*) as total, {counts} from {ctx.rel()}")[0]
    total = row["total"] or 0
    columns = [
        {
            "column": c,
            "null_rate": round(row["n_" + c] / total, 4) if total else 0.0,
            "baseline": None,
            "upper": rule.max_rate,
            "failed": bool(total) and row["n_" + c] / total > rule.max_rate,
            "null_rows": int(row["n_" + c] or 0),
        }
        for c in rule.columns
    ]
    return _nulls_verdict(ctx, rule, columns, [], day=None)


def _nulls_verdict(
    ctx: RuleContext,
    rule: NullRate,
    columns: list[dict[str, Any]],
    recent: list[dict[str, Any]],
    day: date | None,
) -> CheckResult:
    judged = [c for c in columns if c["upper"] is not None and c["null_rate"] is not None]
    failing = [c for c in judged if c["failed"]]
    worst = max(failing or judged, key=lambda c: c["null_rate"] - c["upper"])
    sample: list[dict[str, Any]] = []
    keys = _key_columns(ctx.asset)
    if failing and keys:
        where = f"{quote(worst['column'])} is null"
        if day is not None and rule.date_column:
            where += f" and {as_day_expr(rule.date_column)} = {date_literal(day)}"
        sample = ctx.query(
            f"select {', '.join(quote(k) for k in keys)} from {ctx.rel()} "
            f"where {where} limit {SAMPLE_ROWS}"
        )
    when = f"on {day}" if day else "over the whole table"
    if failing:
        parts = "; ".join(
            f"{c['column']} {c['null_rate']:.1%} (expected <= {c['upper']:.1%}"
            + (f", usually {c['baseline']:.1%})" if c["baseline"] is not None else ")")
            for c in failing
        )
        description = f"Null rate above baseline in {ctx.asset.asset} {when}: {parts}."
    else:
        description = (
            f"Null rates of {len(judged)} column(s) of {ctx.asset.asset} {when} within "
            f"their expected ranges (highest vs limit: {worst['column']} "
            f"{worst['null_rate']:.1%} <= {worst['upper']:.1%})."
        )
    return build_result(
        ctx,
        rule,
        rule_type="null_rate",
        failed=bool(failing),
        severity=rule.severity,
        metric=f"null_rate({worst['column']})",
        value=worst["null_rate"],
        low=0.0,
        high=worst["upper"],
        description=description,
        kind="nulls:" + ",".join(sorted(c["column"] for c in failing)),
        sample=sample,
        recent=recent,
        details={"day": day, "columns": columns},
    )
