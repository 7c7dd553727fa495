"""Timestamps out of bounds (TimestampBounds): values in the future or in a distant past.

Per day, every DATE/TIMESTAMP column of the day's rows: the share of values after
`as_of + future_tolerance` or before `ancient_before` (a clock reset to 1970, a unit bug
writing milliseconds as seconds). The share is judged against its own baseline, upward:
raw client clocks carry some garbage normally, server clocks none. The day column itself
cannot be judged that way (a row dated 2099 is not on the judged day), so any row of the
table whose day is out of bounds fails the check until it is corrected. Without a day, the
whole table's share is judged against `min_abs_change`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from platform_assets.quality.results import CheckResult
from platform_assets.quality.rules.context import (
    RuleContext,
    as_date,
    build_result,
    not_judged,
    ts_literal,
)
from platform_assets.quality.rules.days import DAY, day_cut, monitored, window
from platform_assets.quality.specs import TimestampBounds
from platform_assets.quality.stats import share_test
from platform_assets.quality.warehouse import quote


def _out_of_bounds(column: str, future: datetime, ancient: date) -> str:
    value = f"cast({quote(column)} as timestamp)"
    return (
        f"({value} > {ts_literal(future)} or "
        f"{value} < {ts_literal(datetime.combine(ancient, datetime.min.time()))})"
    )


def check_timestamp_bounds(ctx: RuleContext, rule: TimestampBounds) -> CheckResult:
    future = ctx.as_of + rule.future_tolerance
    cut = day_cut(ctx, rule.day)
    columns = monitored(ctx, "temporal", rule.exclude, cut.column if cut else None)
    findings: list[dict[str, Any]] = []
    if not columns and (cut is None or cut.column is None):
        return not_judged(
            ctx,
            rule,
            rule_type="timestamp_bounds",
            metric="out_of_bounds",
            value=None,
            description=f"Timestamps of {ctx.asset.asset} not judged: no timestamp column.",
        )
    if cut is not None and cut.column is not None:
        findings.append(_day_column(ctx, cut.column, future, rule))
    if columns and cut is not None:
        findings += _per_day(ctx, rule, cut.relation, columns, future)
    elif columns:
        findings += _whole_table(ctx, rule, columns, future)
    return _verdict(ctx, rule, findings, future)


def _day_column(
    ctx: RuleContext, column: str, future: datetime, rule: TimestampBounds
) -> dict[str, Any]:
    row = ctx.query(
        f"select count(*) as bad from {ctx.rel()} "
        f"where {_out_of_bounds(column, future, rule.ancient_before)}"
    )[0]
    bad = int(row["bad"] or 0)
    return {"column": column, "rows_out_of_bounds": bad, "share": None, "failed": bad > 0}


def _per_day(
    ctx: RuleContext, rule: TimestampBounds, relation: str, columns: list[str], future: datetime
) -> list[dict[str, Any]]:
    start = ctx.day - timedelta(days=rule.training_days)
    parts = ", ".join(
        f"sum(case when {_out_of_bounds(c, future, rule.ancient_before)} then 1 else 0 end) "
        f"as b{i}, count({quote(c)}) as n{i}"
        for i, c in enumerate(columns)
    )
    rows = ctx.query(
        f"select {DAY} as day, {parts} from {relation} "
        f"where {window(start, ctx.day)} group by {DAY}"
    )
    by_day = {as_date(r["day"]): r for r in rows}
    today = by_day.get(ctx.day)
    if today is None:
        return []
    incidents = ctx.incident_days(rule.check_name, start)
    training = [d for d in by_day if d < ctx.day and d not in incidents]
    findings = []
    for i, column in enumerate(columns):
        rows_today = int(today[f"n{i}"] or 0)
        bad = int(today[f"b{i}"] or 0)
        test = share_test(
            [(int(by_day[d][f"b{i}"] or 0), int(by_day[d][f"n{i}"] or 0)) for d in training],
            bad,
            rows_today,
            min_points=rule.min_training_points,
        )
        share = bad / rows_today if rows_today else 0.0
        failed = (
            test.z > 0 and test.deviates(share, rule.sensitivity, rule.min_abs_change)
            if test is not None
            else share > rule.min_abs_change
        )
        findings.append(
            {
                "column": column,
                "rows_out_of_bounds": bad,
                "share": round(share, 5),
                "usual_share": round(test.expected, 5) if test else None,
                "failed": failed,
            }
        )
    return findings


def _whole_table(
    ctx: RuleContext, rule: TimestampBounds, columns: list[str], future: datetime
) -> list[dict[str, Any]]:
    parts = ", ".join(
        f"sum(case when {_out_of_bounds(c, future, rule.ancient_before)} then 1 else 0 end) "
        f"as b{i}, count({quote(c)}) as n{i}"
        for i, c in enumerate(columns)
    )
    row = ctx.query(f"select {parts} from {ctx.rel()}")[0]
    findings = []
    for i, column in enumerate(columns):
        rows, bad = int(row[f"n{i}"] or 0), int(row[f"b{i}"] or 0)
        share = bad / rows if rows else 0.0
        findings.append(
            {
                "column": column,
                "rows_out_of_bounds": bad,
                "share": round(share, 5),
                "usual_share": None,
                "failed": share > rule.min_abs_change,
            }
        )
    return findings


def _verdict(
    ctx: RuleContext, rule: TimestampBounds, findings: list[dict[str, Any]], future: datetime
) -> CheckResult:
    failing = [f for f in findings if f["failed"]]
    bounds = f"after {future:%Y-%m-%d %H:%M} or before {rule.ancient_before}"
    if failing:
        parts = "; ".join(
            f"{f['column']}: {f['rows_out_of_bounds']} row(s)"
            + (f" ({f['share']:.2%} of the day's)" if f["share"] is not None else "")
            for f in failing
        )
        description = f"Timestamps of {ctx.asset.asset} out of bounds ({bounds}): {parts}."
    else:
        description = (
            f"{len(findings)} timestamp column(s) of {ctx.asset.asset} within bounds "
            f"(nothing {bounds} beyond the usual)."
        )
    worst = max(failing or findings, key=lambda f: f["rows_out_of_bounds"], default=None)
    return build_result(
        ctx,
        rule,
        rule_type="timestamp_bounds",
        failed=bool(failing),
        severity=rule.severity,
        metric=f"out_of_bounds({worst['column']})" if worst else "out_of_bounds",
        value=float(worst["rows_out_of_bounds"]) if worst else None,
        low=0.0,
        high=None,
        description=description,
        kind="timestamps:" + ",".join(sorted(f["column"] for f in failing)),
        sample=failing,
        details={
            "day": ctx.day,
            "future_after": future,
            "ancient_before": rule.ancient_before,
            "columns": findings,
            "failing_columns": sorted(f["column"] for f in failing),
        },
    )
