"""Volume: rows (or a measure) per day against a weekday-seasonal baseline."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from platform_assets.quality.calendar import scaled_range
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
from platform_assets.quality.specs import Volume
from platform_assets.quality.stats import daily_series, volume_baseline
from platform_assets.quality.warehouse import quote


def check_volume(ctx: RuleContext, rule: Volume) -> CheckResult:
    window = rule.seasonal_training_days if rule.seasonality else rule.training_days
    start = ctx.day - timedelta(days=window)
    series = _daily_values(ctx, rule, start)
    value = dict(series).get(ctx.day, 0.0)
    recent = [{"day": d, rule.metric: v} for d, v in series[-RECENT_DAYS:]]
    # days this check already judged anomalous are incidents, not normal behaviour, and a
    # declared promotion is not what a normal day looks like either
    incidents = ctx.incident_days(rule.check_name, start)
    declared = {d for d, _ in series if ctx.calendar.is_declared(d) and d != ctx.day}
    baseline = volume_baseline(
        [(d, v) for d, v in series if d < ctx.day and d not in incidents | declared],
        ctx.day,
        value,
        sensitivity=rule.sensitivity,
        min_points=rule.min_training_points,
        seasonal=rule.seasonality == "day_of_week",
        min_relative_change=rule.min_relative_change,
    )
    if baseline is None:
        points = sum(1 for d, _ in series if d < ctx.day)
        return not_judged(
            ctx,
            rule,
            rule_type="volume",
            metric=rule.metric,
            value=value,
            description=f"{rule.metric} on {ctx.day}: {fmt(value)}; not judged, "
            f"{points} training day(s) < {rule.min_training_points}.",
            recent=recent,
            details={"day": ctx.day, "training_points": points},
        )
    factor = ctx.calendar.factor(ctx.day)
    low, high = baseline.low, baseline.high
    if factor != 1.0:
        low, high = scaled_range(low, high, baseline.predicted, factor)
    expected = baseline.predicted * factor
    failed = value < low or value > high
    direction = "drop" if value < expected else "spike"
    change = value / expected - 1 if expected else 0.0
    details = {
        "day": ctx.day,
        "predicted": round(expected, 2),
        "z_score": round(baseline.z, 2),
        "sensitivity": rule.sensitivity,
        "relative_change": round(change, 4),
        "training_points": baseline.points,
        "weekday_seasonality": baseline.seasonal,
        "trend": baseline.trend,
        "outliers_dropped": baseline.dropped_outliers,
        "incident_days_excluded": sorted(incidents),
        "declared_days_excluded": sorted(declared),
        "calendar_factor": factor,
        "sigma_anscombe": round(baseline.sigma, 3),
    }
    sample = _volume_breakdown(ctx, rule) if failed and rule.explain_by else []
    declared_today = ctx.calendar.declared(ctx.day)
    plan = (
        f"; {declared_today.event} declared with x{factor:g} traffic"
        if declared_today is not None
        else ""
    )
    description = (
        f"{rule.metric} of {ctx.asset.asset} on {ctx.day} ({ctx.day:%A}) was {fmt(value)}, "
        f"{abs(change):.0%} {'below' if change < 0 else 'above'} the expected "
        f"{fmt(round(expected))} (z = {baseline.z:+.1f}; normal range "
        f"{fmt(round(low))} .. {fmt(round(high))} from {baseline.points} "
        f"training days{', weekday-adjusted' if baseline.seasonal else ''}{plan})."
    )
    return build_result(
        ctx,
        rule,
        rule_type="volume",
        failed=failed,
        severity=rule.severity,
        metric=rule.metric,
        value=value,
        low=round(low, 2),
        high=round(high, 2),
        description=description,
        kind=direction,
        recent=recent,
        sample=sample,
        details=details,
    )


def _daily_values(ctx: RuleContext, rule: Volume, start: date) -> list[tuple[date, float]]:
    day_expr = as_day_expr(rule.date_column)
    rows = ctx.query(
        f"select {day_expr} as day, {rule.measure} as value from {ctx.rel()} "
        f"where {day_expr} between {date_literal(start)} and {date_literal(ctx.day)} "
        f"group by {day_expr}"
    )
    return daily_series({as_date(r["day"]): float(r["value"] or 0) for r in rows}, start, ctx.day)


def _volume_breakdown(ctx: RuleContext, rule: Volume) -> list[dict[str, Any]]:
    """Which groups moved: the day's rows per group against their mean of the week before."""
    group = quote(rule.explain_by or "")
    day_expr = as_day_expr(rule.date_column)
    week = ctx.day - timedelta(days=7)
    rows = ctx.query(
        f"select {group} as grp, "
        f"sum(case when {day_expr} = {date_literal(ctx.day)} then 1 else 0 end) as day_rows, "
        f"sum(case when {day_expr} < {date_literal(ctx.day)} then 1 else 0 end) / 7.0 "
        f"as typical_rows "
        f"from {ctx.rel()} where {day_expr} between {date_literal(week)} "
        f"and {date_literal(ctx.day)} group by {group}"
    )
    out = [
        {
            rule.explain_by: r["grp"],
            "rows": int(r["day_rows"] or 0),
            "typical": round(float(r["typical_rows"] or 0), 1),
            "change": round(float(r["day_rows"] or 0) - float(r["typical_rows"] or 0), 1),
        }
        for r in rows
    ]
    out.sort(key=lambda r: -abs(r["change"]))
    return out[:SAMPLE_ROWS]
