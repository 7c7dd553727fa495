"""Cross-source consistency: behaviour events and the shop database describe the same
business, so per day they must agree as well as they usually do.

- Agreement: the ratio of two daily measures (orders completed in events / paid orders in
  the database; revenue reported by events / revenue in the database). Clients lose a few
  events and send some late, so the ratio is rarely exactly 1: its usual level and spread
  are learnt from the days before (median, robust spread), never set by hand.
- Unmatched: the share of the day's rows of one source whose key the other does not know
  (products viewed that the database does not have), against its baseline.

Either side can be the broken one (a checkout charging the wrong amount, a CDC stream that
stalls while events flow, an app sending prices in cents): the finding shows both sides.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

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
from platform_assets.quality.specs import Agreement, DailyMeasure, Unmatched
from platform_assets.quality.stats import ratio_band, share_test
from platform_assets.quality.warehouse import quote


def _daily(ctx: RuleContext, side: DailyMeasure, start: date) -> dict[date, float]:
    day = as_day_expr(side.day)
    where = f" and ({side.where})" if side.where else ""
    rows = ctx.query(
        f"select {day} as day, {side.measure} as value from {ctx.rel(side.asset)} "
        f"where {day} between {date_literal(start)} and {date_literal(ctx.day)}{where} "
        f"group by {day}"
    )
    return {as_date(r["day"]): float(r["value"] or 0) for r in rows}


def check_agreement(ctx: RuleContext, rule: Agreement) -> CheckResult:
    start = ctx.day - timedelta(days=rule.training_days)
    left, right = _daily(ctx, rule.left, start), _daily(ctx, rule.right, start)
    units = _daily(ctx, rule.per, start) if rule.per else right
    ratios = {d: left.get(d, 0.0) / r for d, r in right.items() if r >= rule.min_right}
    recent = [
        {
            "day": d,
            rule.left.label: left.get(d, 0.0),
            rule.right.label: right[d],
            "ratio": round(v, 4),
        }
        for d, v in sorted(ratios.items())[-RECENT_DAYS:]
    ]
    incidents = ctx.incident_days(rule.check_name, start)
    training = [
        (v, units.get(d, 0.0)) for d, v in ratios.items() if d < ctx.day and d not in incidents
    ]
    today = ratios.get(ctx.day)
    band = (
        ratio_band(
            training,
            units.get(ctx.day, 0.0),
            sensitivity=rule.sensitivity,
            min_points=rule.min_training_points,
            min_abs_change=rule.min_abs_change,
        )
        if today is not None
        else None
    )
    sides = f"{rule.left.label} ({rule.left.asset}) / {rule.right.label} ({rule.right.asset})"
    if band is None or today is None:
        reason = (
            f"{rule.right.label} below {fmt(rule.min_right)} on {ctx.day}"
            if today is None
            else f"{len(training)} training day(s) < {rule.min_training_points}"
        )
        return not_judged(
            ctx,
            rule,
            rule_type="consistency",
            metric="ratio",
            value=today,
            description=f"{sides} on {ctx.day} not judged: {reason}.",
            recent=recent,
            details={"day": ctx.day, "reason": reason},
        )
    failed = band.is_anomalous(today)
    left_today, right_today = left.get(ctx.day, 0.0), right[ctx.day]
    description = (
        f"{sides} on {ctx.day}: {fmt(round(left_today, 2))} / {fmt(round(right_today, 2))} = "
        f"{today:.3f}; the two sources usually agree at {band.predicted:.3f} "
        f"(expected {band.low:.3f} .. {band.high:.3f}, learnt from {band.points} days)."
    )
    return build_result(
        ctx,
        rule,
        rule_type="consistency",
        failed=failed,
        severity=rule.severity,
        metric="ratio",
        value=round(today, 4),
        low=round(band.low, 4),
        high=round(band.high, 4),
        description=description,
        kind="diverge:" + ("below" if today < band.predicted else "above"),
        recent=recent,
        details={
            "day": ctx.day,
            rule.left.label: left_today,
            rule.right.label: right_today,
            "usual_ratio": round(band.predicted, 4),
            "training_points": band.points,
            "incident_days_excluded": sorted(incidents),
        },
    )


def _unmatched_sql(ctx: RuleContext, rule: Unmatched, start: date) -> str:
    child, column = rule.child, quote(rule.column)
    key = f"try_cast({column} as {rule.cast})" if rule.cast else column
    where = f" and ({child.where})" if child.where else ""
    day = as_day_expr(child.day)
    parent_column = quote(rule.parent_column)
    if rule.value and rule.parent_value:
        child_value = f", cast({quote(rule.value)} as double) as v"
        parent_rows = (
            f"select {parent_column} as k, cast({quote(rule.parent_value)} as double) as v"
        )
    else:
        child_value, parent_rows = "", f"select distinct {parent_column} as k"
    return (
        f"(select {key} as k, {day} as day{child_value} from {ctx.rel(child.asset)} "
        f"where {column} is not null and {day} between {date_literal(start)} "
        f"and {date_literal(ctx.day)}{where}) as child left join ({parent_rows} "
        f"from {ctx.rel(rule.parent)} where {parent_column} is not null) "
        f"as parent on child.k = parent.k"
    )


def _mismatch(rule: Unmatched) -> str:
    """A child row without its parent, or (comparing values) with a different value."""
    if rule.value and rule.parent_value:
        return (
            f"(parent.k is null or child.v is null or parent.v is null "
            f"or abs(child.v - parent.v) > {rule.tolerance})"
        )
    return "parent.k is null"


def _sample_sql(rule: Unmatched, joined: str, day: date) -> str:
    where = f"{_mismatch(rule)} and child.day = {date_literal(day)}"
    if rule.value:
        return (
            f"select child.k as {quote(rule.column)}, child.v as {quote(rule.value)}, "
            f"parent.v as {quote(rule.parent + '.' + (rule.parent_value or ''))} from {joined} "
            f"where {where} order by abs(coalesce(child.v, 0) - coalesce(parent.v, 0)) desc "
            f"limit {SAMPLE_ROWS}"
        )
    return (
        f"select child.k as {quote(rule.column)}, count(*) as rows from {joined} "
        f"where {where} group by child.k order by count(*) desc limit {SAMPLE_ROWS}"
    )


def check_unmatched(ctx: RuleContext, rule: Unmatched) -> CheckResult:
    start = ctx.day - timedelta(days=rule.training_days)
    joined = _unmatched_sql(ctx, rule, start)
    rows = ctx.query(
        f"select child.day as day, count(*) as n, sum(case when {_mismatch(rule)} then 1 "
        f"else 0 end) as unmatched from {joined} group by child.day"
    )
    by_day = {as_date(r["day"]): (int(r["unmatched"] or 0), int(r["n"])) for r in rows}
    incidents = ctx.incident_days(rule.check_name, start)
    hits, total = by_day.get(ctx.day, (0, 0))
    test = share_test(
        [v for d, v in by_day.items() if d < ctx.day and d not in incidents],
        hits,
        total,
        min_points=rule.min_training_points,
    )
    share = hits / total if total else 0.0
    failed = (
        test is not None
        and test.z > 0
        and test.deviates(share, rule.sensitivity, rule.min_abs_change)
    )
    sample: list[dict[str, Any]] = []
    if hits:
        sample = ctx.query(_sample_sql(rule, joined, ctx.day))
    link = f"{rule.child.asset}.{rule.column} -> {rule.parent}.{rule.parent_column}"
    usual = f"usually {test.expected:.2%}" if test else "no baseline yet"
    what = (
        f"have no match in {link} or a {rule.value} that differs from its "
        f"{rule.parent}.{rule.parent_value}"
        if rule.value
        else f"have no match in {link}"
    )
    description = (
        f"{fmt(hits)} of {fmt(total)} {rule.child.label or 'rows'} on {ctx.day} ({share:.2%}) "
        f"{what} ({usual})."
    )
    return build_result(
        ctx,
        rule,
        rule_type="consistency",
        failed=failed,
        severity=rule.severity,
        metric="unmatched_share",
        value=round(share, 5),
        low=0.0,
        high=round(test.expected + rule.sensitivity * test.spread, 5) if test else None,
        description=description,
        kind="unmatched",
        sample=sample,
        recent=[
            {"day": d, "unmatched": h, "rows": n}
            for d, (h, n) in sorted(by_day.items())[-RECENT_DAYS:]
        ],
        details={"day": ctx.day, "unmatched": hits, "rows": total, "parent": rule.parent},
    )
