"""Duplicate keys: none allowed (staging, marts), or a duplicate rate against its baseline (raw)."""

from __future__ import annotations

from datetime import timedelta

from platform_assets.quality.results import CheckResult, fmt
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
from platform_assets.quality.specs import Duplicates
from platform_assets.quality.stats import rate_baseline
from platform_assets.quality.warehouse import quote


def _key_expr(key: tuple[str, ...]) -> str:
    if len(key) == 1:
        return quote(key[0])
    return " || '|' || ".join(f"coalesce(cast({quote(k)} as varchar), '')" for k in key)


def check_duplicates(ctx: RuleContext, rule: Duplicates) -> CheckResult:
    if rule.baseline:
        return _duplicates_baseline(ctx, rule)
    keys = ", ".join(quote(k) for k in rule.key)
    not_null = " and ".join(f"{quote(k)} is not null" for k in rule.key)
    row = ctx.query(
        f"select count(*) as duplicate_keys, coalesce(sum(copies), 0) as rows_in_duplicates "
        f"from (select {keys}, count(*) as copies from {ctx.rel()} where {not_null} "
        f"group by {keys} having count(*) > 1) as dups"
    )[0]
    duplicate_keys = int(row["duplicate_keys"] or 0)
    sample = []
    if duplicate_keys:
        sample = ctx.query(
            f"select {keys}, count(*) as copies from {ctx.rel()} where {not_null} "
            f"group by {keys} having count(*) > 1 order by copies desc limit {SAMPLE_ROWS}"
        )
    key_text = ", ".join(rule.key)
    description = (
        f"{fmt(duplicate_keys)} value(s) of the key ({key_text}) appear more than once in "
        f"{ctx.asset.asset} ({fmt(int(row['rows_in_duplicates'] or 0))} rows); expected none."
        if duplicate_keys
        else f"Every ({key_text}) in {ctx.asset.asset} is unique."
    )
    return build_result(
        ctx,
        rule,
        rule_type="duplicates",
        failed=duplicate_keys > 0,
        severity=rule.severity,
        metric="duplicate_keys",
        value=float(duplicate_keys),
        low=0.0,
        high=0.0,
        description=description,
        kind="duplicates",
        sample=sample,
        details={"key": list(rule.key), "rows_in_duplicates": row["rows_in_duplicates"]},
    )


def _duplicates_baseline(ctx: RuleContext, rule: Duplicates) -> CheckResult:
    if rule.date_column is None:
        raise ValueError(f"{ctx.asset.asset}: a baseline duplicate rule needs a date_column")
    start = ctx.day - timedelta(days=rule.training_days)
    day_expr = as_day_expr(rule.date_column)
    rows = ctx.query(
        f"select {day_expr} as day, count(*) as total, "
        f"count(distinct {_key_expr(rule.key)}) as distinct_keys from {ctx.rel()} "
        f"where {day_expr} between {date_literal(start)} and {date_literal(ctx.day)} "
        f"group by {day_expr}"
    )
    rates = {as_date(r["day"]): 1 - r["distinct_keys"] / r["total"] for r in rows if r["total"]}
    recent = [{"day": d, "duplicate_rate": round(v, 4)} for d, v in sorted(rates.items())]
    recent = recent[-RECENT_DAYS:]
    rate = rates.get(ctx.day)
    baseline = rate_baseline(
        [v for d, v in rates.items() if d < ctx.day],
        sensitivity=rule.sensitivity,
        min_points=rule.min_training_points,
        min_abs_change=rule.min_abs_change,
    )
    if rate is None or baseline is None:
        return not_judged(
            ctx,
            rule,
            rule_type="duplicates",
            metric="duplicate_rate",
            value=rate,
            description=f"Duplicate rate of ({', '.join(rule.key)}) in "
            f"{ctx.asset.asset} on {ctx.day} not judged: "
            f"{'no rows' if rate is None else 'not enough training days'}.",
            recent=recent,
            details={"day": ctx.day},
        )
    failed = rate > baseline.upper
    sample = []
    if failed:
        keys = ", ".join(quote(k) for k in rule.key)
        sample = ctx.query(
            f"select {keys}, count(*) as copies from {ctx.rel()} "
            f"where {day_expr} = {date_literal(ctx.day)} group by {keys} "
            f"having count(*) > 1 order by copies desc limit {SAMPLE_ROWS}"
        )
    description = (
        f"{rate:.2%} of the rows of {ctx.asset.asset} received on {ctx.day} repeat a "
        f"({', '.join(rule.key)}) seen that day; usually {baseline.median:.2%}, expected "
        f"<= {baseline.upper:.2%}."
    )
    return build_result(
        ctx,
        rule,
        rule_type="duplicates",
        failed=failed,
        severity=rule.severity,
        metric="duplicate_rate",
        value=round(rate, 5),
        low=0.0,
        high=round(baseline.upper, 5),
        description=description,
        kind="duplicate_burst",
        sample=sample,
        recent=recent,
        details={
            "day": ctx.day,
            "baseline": round(baseline.median, 5),
            "training_points": baseline.points,
        },
    )
