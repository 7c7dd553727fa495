"""Column values per day (ColumnValues): sum, mean, zero rate, negative rate, min and max of
every numeric column, each against the same metric on the days before.

One query reads every metric of every numeric column per day over the training window;
each metric is then judged on its own (see `specs.ColumnValues` for the tests) and the
check fails when any of them is anomalous, listing all that are.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from platform_assets.quality.calendar import scaled_range
from platform_assets.quality.results import CheckResult, fmt
from platform_assets.quality.rules.context import (
    SAMPLE_ROWS,
    RuleContext,
    as_date,
    build_result,
    not_judged,
)
from platform_assets.quality.rules.days import (
    DAY,
    DayCut,
    day_cut,
    is_integer,
    monitored,
    window,
)
from platform_assets.quality.specs import ColumnValues
from platform_assets.quality.stats import (
    ANSCOMBE,
    asinh_scale,
    robust_band,
    seasonal_baseline,
    share_test,
    spread,
)
from platform_assets.quality.warehouse import quote

POPULATED = 0.7  # a table with rows on fewer days than this is not a daily table
Row = dict[str, Any]


@dataclass
class Finding:
    column: str
    metric: str  # sum, mean, zero_rate, negative_rate, min, max
    value: float
    expected: float
    low: float
    high: float
    z: float
    failed: bool

    @property
    def label(self) -> str:
        return f"{self.metric}({self.column})"

    def as_row(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "metric": self.metric,
            "value": round(self.value, 4),
            "expected": round(self.expected, 4),
            "range": f"{fmt(round(self.low, 4))} .. {fmt(round(self.high, 4))}",
            "z": round(self.z, 1),
        }


def check_column_values(ctx: RuleContext, rule: ColumnValues) -> CheckResult:
    cut = day_cut(ctx, rule.day, rule.where)
    columns = monitored(ctx, "numeric", rule.exclude, cut.column if cut else None)
    if cut is None or not columns:
        reason = "no day to cut it by" if cut is None else "no numeric column"
        return _not_judged(ctx, rule, reason, cut)
    start = ctx.day - timedelta(days=rule.training_days)
    days = _daily_aggregates(ctx, cut, columns, start)
    training = _training_days(ctx, rule, days, start)
    today = days.get(ctx.day)
    if today is None:
        return _not_judged(ctx, rule, f"no rows on {ctx.day}", cut)
    if training is None:
        return _not_judged(ctx, rule, "rows on too few days to learn from", cut)
    typical_rows = statistics.median(days[d]["n"] for d in training)
    counts = {name for name, sql_type in ctx.columns() if is_integer(sql_type)}
    findings = [
        finding
        for index, column in enumerate(columns)
        for finding in _judge_column(
            ctx, rule, f"m{index}", column, days, training, typical_rows, column in counts
        )
    ]
    return _verdict(ctx, rule, cut, findings, len(training))


def _daily_aggregates(
    ctx: RuleContext, cut: DayCut, columns: list[str], start: date
) -> dict[date, Row]:
    parts = []
    for index, column in enumerate(columns):
        c, m = quote(column), f"m{index}"
        parts += [
            f"sum({c}) as {m}_sum",
            f"avg({c}) as {m}_mean",
            f"stddev_samp({c}) as {m}_sd",
            f"count({c}) as {m}_count",
            f"sum(case when {c} = 0 then 1 else 0 end) as {m}_zero",
            f"sum(case when {c} < 0 then 1 else 0 end) as {m}_negative",
            f"min({c}) as {m}_min",
            f"max({c}) as {m}_max",
        ]
    rows = ctx.query(
        f"select {DAY} as day, count(*) as n, {', '.join(parts)} from {cut.relation} "
        f"where {window(start, ctx.day)} group by {DAY}"
    )
    return {as_date(r["day"]): r for r in rows}


def _training_days(
    ctx: RuleContext, rule: ColumnValues, days: dict[date, Row], start: date
) -> list[date] | None:
    """Days to learn from: populated, not an earlier incident, not a declared event. None
    when the table is too young or too sparse to be judged per day."""
    before = sorted(d for d in days if d < ctx.day)
    if not before:
        return None
    span = (ctx.day - before[0]).days
    if len(before) < rule.min_training_points or len(before) < POPULATED * span:
        return None
    incidents = ctx.incident_days(rule.check_name, start)
    usable = [d for d in before if d not in incidents and not ctx.calendar.is_declared(d)]
    return usable if len(usable) >= rule.min_training_points else None


def _number(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _judge_column(
    ctx: RuleContext,
    rule: ColumnValues,
    m: str,
    column: str,
    days: dict[date, Row],
    training: list[date],
    typical_rows: float,
    is_count: bool,
) -> list[Finding]:
    """A table with one row a day (a daily mart) has its sum for mean, min and max: only
    the sum is judged (it knows the weekdays and the calendar). Extremes are judged for
    amounts (a unit error shows there first), not for counts, whose smallest and largest
    values are a handful of sessions or lines; never on few rows, nor on a declared day
    (more traffic stretches them). A share's sum is not judged."""
    today = days[ctx.day]
    declared = ctx.calendar.is_declared(ctx.day)
    findings = (
        []
        if _is_share(days, training, m)
        else [_judge_sum(ctx, rule, m, column, days, training, is_count)]
    )
    present = [d for d in training if days[d][f"{m}_count"]]
    if today[f"{m}_count"] and typical_rows > 1:
        findings.append(_judge_mean(rule, column, days, present, m, today))
        if typical_rows >= rule.min_rows_per_day and not declared and not is_count:
            findings += [
                _judge_extreme(rule, column, metric, days, present, m, today)
                for metric in ("min", "max")
            ]
        findings += [
            _judge_rate(rule, column, rate, days, present, m, today)
            for rate in ("zero", "negative")
        ]
    return [f for f in findings if f is not None]


def _is_share(days: dict[date, Row], training: list[date], m: str) -> bool:
    """A column whose values always lie in [0, 1] (a conversion rate, a retention share):
    its sum over rows means nothing and does not grow with traffic, so it is not judged."""
    lows = [days[d][f"{m}_min"] for d in training if days[d][f"{m}_min"] is not None]
    highs = [days[d][f"{m}_max"] for d in training if days[d][f"{m}_max"] is not None]
    if not lows or not highs:
        return False
    return float(min(lows)) >= 0 and float(max(highs)) <= 1 and float(max(highs)) > 0


def _judge_sum(
    ctx: RuleContext,
    rule: ColumnValues,
    m: str,
    column: str,
    days: dict[date, Row],
    training: list[date],
    is_count: bool,
) -> Finding | None:
    """A sum against the weekdays and trend of its training days. Amounts are fitted on an
    asinh (log-like) scale; counts (integer columns: carts, sessions, units) on the
    Anscombe scale, where their noise is never below counting noise: a count of 50 moves
    by about 7 by chance, however smooth a few weeks of it happened to be."""
    series = [(d, _number(days[d][f"{m}_sum"])) for d in training]
    value = _number(days[ctx.day][f"{m}_sum"])
    counting = is_count and all(v >= 0 for _, v in series)
    baseline = seasonal_baseline(
        series,
        ctx.day,
        value,
        scale=ANSCOMBE if counting else asinh_scale([v for _, v in series]),
        sensitivity=rule.sensitivity,
        min_points=rule.min_training_points,
        seasonal=True,
        min_relative_change=rule.min_relative_change,
    )
    if baseline is None:
        return None
    factor = ctx.calendar.factor(ctx.day)
    low, high = baseline.low, baseline.high
    if factor != 1.0:
        # a declared day widens the range to cover both: traffic scales by the factor, but
        # not every sum follows traffic (refunds pay back earlier days' sales)
        scaled_low, scaled_high = scaled_range(low, high, baseline.predicted, factor)
        low, high = min(low, scaled_low), max(high, scaled_high)
    # a value like one seen in the last weeks is no anomaly, however unlikely the seasonal
    # model finds it: noisy, zero-inflated sums (refunds: most days some, a few days none)
    # would otherwise alert on every quiet day
    seen = [v for _, v in series]
    beyond = value < min(seen) or value > max(seen)
    failed = (value < low or value > high) and beyond
    return Finding(column, "sum", value, baseline.predicted * factor, low, high, baseline.z, failed)


def _judge_extreme(
    rule: ColumnValues,
    column: str,
    metric: str,
    days: dict[date, Row],
    training: list[date],
    m: str,
    today: Row,
) -> Finding | None:
    """The day's min (max) against the training days': only a lower min (a higher max) is
    an anomaly; a day without its usual cheapest item is not."""
    history = [_number(days[d][f"{m}_{metric}"]) for d in training]
    value = _number(today[f"{m}_{metric}"])
    band = robust_band(
        history,
        value,
        scale=asinh_scale(history),
        sensitivity=rule.sensitivity,
        min_points=rule.min_training_points,
        min_relative_change=rule.min_relative_change,
        extreme_margin=rule.extreme_margin,
    )
    if band is None:
        return None
    failed = value < band.low if metric == "min" else value > band.high
    return Finding(column, metric, value, band.predicted, band.low, band.high, band.z, failed)


def _judge_mean(
    rule: ColumnValues, column: str, days: dict[date, Row], training: list[date], m: str, today: Row
) -> Finding | None:
    """The day's mean against the training days' means. Its noise is the larger part of
    two: how much the daily means vary (robust), and how uncertain today's mean is from its
    own rows (standard error): a few expensive products make a small shop's daily mean
    price jump in a way the spread of 28 daily means underestimates."""
    means = [_number(days[d][f"{m}_mean"]) for d in training]
    if len(means) < rule.min_training_points:
        return None
    value = _number(today[f"{m}_mean"])
    center = statistics.median(means)
    between = spread(means)
    within = _number(today[f"{m}_sd"]) / math.sqrt(max(int(today[f"{m}_count"]), 1))
    sigma = math.hypot(between, within) or abs(center) * 0.01 or 1.0
    z = (value - center) / sigma
    margin = max(rule.sensitivity * sigma, abs(center) * rule.min_relative_change)
    low, high = min(center - margin, min(means)), max(center + margin, max(means))
    return Finding(column, "mean", value, center, low, high, z, value < low or value > high)


def _judge_rate(
    rule: ColumnValues,
    column: str,
    rate: str,
    days: dict[date, Row],
    training: list[date],
    m: str,
    today: Row,
) -> Finding | None:
    """Zero and negative rates are judged upward only: fewer zeros is not a fault."""
    count = int(today[f"{m}_count"])
    hits = int(_number(today[f"{m}_{rate}"]))
    test = share_test(
        [(int(_number(days[d][f"{m}_{rate}"])), int(days[d][f"{m}_count"])) for d in training],
        hits,
        count,
        min_points=rule.min_training_points,
    )
    if test is None:
        return None
    share = hits / count
    failed = test.z > 0 and test.deviates(share, rule.sensitivity, min_abs=0.02)
    high = test.expected + rule.sensitivity * test.spread
    return Finding(column, f"{rate}_rate", share, test.expected, 0.0, high, test.z, failed)


def _verdict(
    ctx: RuleContext, rule: ColumnValues, cut: DayCut, findings: list[Finding], points: int
) -> CheckResult:
    failing = [f for f in findings if f.failed]
    worst = max(failing or findings, key=lambda f: abs(f.z), default=None)
    where = f"{ctx.asset.asset} on {ctx.day} (day: {cut.label})"
    if failing:
        parts = "; ".join(
            f"{f.label} {fmt(round(f.value, 4))} (expected {fmt(round(f.low, 4))} .. "
            f"{fmt(round(f.high, 4))})"
            for f in failing[:6]
        )
        description = f"Column values of {where} out of their usual range: {parts}."
    else:
        description = (
            f"{len(findings)} value metrics of {len({f.column for f in findings})} numeric "
            f"column(s) of {where} within their usual ranges ({points} training days)."
        )
    columns: dict[str, dict[str, Any]] = {}
    for f in findings:
        columns.setdefault(f.column, {})[f.metric] = {
            "value": round(f.value, 4),
            "expected": round(f.expected, 4),
            "low": round(f.low, 4),
            "high": round(f.high, 4),
            "z": round(f.z, 2),
            "failed": f.failed,
        }
    return build_result(
        ctx,
        rule,
        rule_type="column_values",
        failed=bool(failing),
        severity=rule.severity,
        metric=worst.label if worst else "column_values",
        value=round(worst.value, 4) if worst else None,
        low=round(worst.low, 4) if worst else None,
        high=round(worst.high, 4) if worst else None,
        description=description,
        kind="values:" + ",".join(sorted(f.label for f in failing)),
        sample=[f.as_row() for f in failing[: SAMPLE_ROWS * 2]],
        details={
            "day": ctx.day,
            "day_column": cut.label,
            "training_points": points,
            "failing_columns": sorted({f.column for f in failing}),
            "columns": columns,
        },
    )


def _not_judged(
    ctx: RuleContext, rule: ColumnValues, reason: str, cut: DayCut | None
) -> CheckResult:
    return not_judged(
        ctx,
        rule,
        rule_type="column_values",
        metric="column_values",
        value=None,
        description=f"Column values of {ctx.asset.asset} on {ctx.day} not judged: {reason}.",
        details={"day": ctx.day, "day_column": cut.label if cut else None, "reason": reason},
    )
