"""Column mix per day (ColumnMix): the share of each value of every low-cardinality column.

A tracking call that stops on one page, a device mapping that breaks, a source whose
pipeline stalls: row counts barely move, but one value's share does. Columns qualify by
their real values (text or boolean, at most `max_distinct` distinct values in the window);
values rarer than `min_share` are pooled as "(other)", together with values never seen in
training, so a brand-new value that takes a real share shows as "(other)" growing.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from platform_assets.quality.results import CheckResult
from platform_assets.quality.rules.context import (
    SAMPLE_ROWS,
    RuleContext,
    as_date,
    build_result,
    not_judged,
)
from platform_assets.quality.rules.days import DAY, DayCut, day_cut, monitored, window
from platform_assets.quality.specs import ColumnMix
from platform_assets.quality.stats import share_test
from platform_assets.quality.warehouse import quote

OTHER = "(other)"
NULL = "(null)"
POPULATED = 0.7
LABEL_TURNOVER = 2.0


def check_column_mix(ctx: RuleContext, rule: ColumnMix) -> CheckResult:
    cut = day_cut(ctx, rule.day, rule.where)
    candidates = monitored(ctx, "categorical", rule.exclude, cut.column if cut else None)
    if cut is None or not candidates:
        return _not_judged(ctx, rule, "no day to cut it by" if cut is None else "no text column")
    start = ctx.day - timedelta(days=rule.training_days)
    totals = _rows_per_day(ctx, cut, start)
    training = _training_days(ctx, rule, totals, start)
    if totals.get(ctx.day, 0) < rule.min_rows_per_day or training is None:
        reason = f"{totals.get(ctx.day, 0)} rows on {ctx.day}" if training else "too few days"
        return _not_judged(ctx, rule, reason)
    columns = _low_cardinality(ctx, rule, cut, candidates, start)
    if not columns:
        return _not_judged(ctx, rule, "no low-cardinality column")
    counts = _value_counts(ctx, cut, columns, start)
    findings: list[dict[str, Any]] = []
    for column in columns:
        findings += _judge_column(ctx, rule, column, counts[column], totals, training)
    return _verdict(ctx, rule, cut, columns, findings, len(training))


def _rows_per_day(ctx: RuleContext, cut: DayCut, start: date) -> dict[date, int]:
    rows = ctx.query(
        f"select {DAY} as day, count(*) as n from {cut.relation} "
        f"where {window(start, ctx.day)} group by {DAY}"
    )
    return {as_date(r["day"]): int(r["n"]) for r in rows}


def _training_days(
    ctx: RuleContext, rule: ColumnMix, totals: dict[date, int], start: date
) -> list[date] | None:
    before = sorted(d for d in totals if d < ctx.day)
    if not before or len(before) < POPULATED * (ctx.day - before[0]).days:
        return None
    incidents = ctx.incident_days(rule.check_name, start)
    usable = [
        d
        for d in before
        if d not in incidents
        and not ctx.calendar.is_declared(d)
        and totals[d] >= rule.min_rows_per_day
    ]
    return usable if len(usable) >= rule.min_training_points else None


def _low_cardinality(
    ctx: RuleContext, rule: ColumnMix, cut: DayCut, candidates: list[str], start: date
) -> list[str]:
    """Columns with a handful of values that recur from day to day. A label that changes
    every day (a batch id, a date as text) has few values per day but a new one each day:
    its "mix" would be 100% new every day, so columns whose values over the window number
    more than LABEL_TURNOVER x a typical day's are labels, not dimensions."""
    candidates = _few_values_today(ctx, rule, cut, candidates)
    if not candidates:
        return []
    counts = ", ".join(f"count(distinct {quote(c)}) as d{i}" for i, c in enumerate(candidates))
    rows = ctx.query(  # one scan: the whole window (day is NULL) and each day
        f"select {DAY} as day, {counts} from {cut.relation} where {window(start, ctx.day)} "
        f"group by grouping sets (({DAY}), ())"
    )
    overall = next(r for r in rows if r["day"] is None)
    per_day = [r for r in rows if r["day"] is not None]
    chosen = []
    for i, column in enumerate(candidates):
        distinct = int(overall[f"d{i}"] or 0)
        typical = statistics.median(int(r[f"d{i}"] or 0) for r in per_day) if per_day else 0
        if 2 <= distinct <= rule.max_distinct and distinct <= LABEL_TURNOVER * max(typical, 1):
            chosen.append(column)
    return chosen


def _few_values_today(
    ctx: RuleContext, rule: ColumnMix, cut: DayCut, candidates: list[str]
) -> list[str]:
    """A first cut on the judged day alone: payloads and ids have thousands of values a
    day, and counting them over four weeks is what made the mix slow."""
    counts = ", ".join(f"count(distinct {quote(c)}) as d{i}" for i, c in enumerate(candidates))
    row = ctx.query(f"select {counts} from {cut.relation} where {window(ctx.day, ctx.day)}")[0]
    return [c for i, c in enumerate(candidates) if int(row[f"d{i}"] or 0) <= rule.max_distinct]


def _value_counts(
    ctx: RuleContext, cut: DayCut, columns: list[str], start: date
) -> dict[str, dict[date, dict[str, int]]]:
    """Rows per day and value of every column, in one scan (grouping sets: one set per
    column; the other columns are NULL in its rows, and a column's own NULLs are counted
    as "(null)")."""
    values = ", ".join(
        f"coalesce(cast({quote(c)} as varchar), '{NULL}') as v{i}" for i, c in enumerate(columns)
    )
    sets = ", ".join(f"(day, v{i})" for i in range(len(columns)))
    rows = ctx.query(
        f"select day, {', '.join(f'v{i}' for i in range(len(columns)))}, count(*) as n "
        f"from (select {DAY} as day, {values} from {cut.relation} "
        f"where {window(start, ctx.day)}) as rows_in group by grouping sets ({sets})"
    )
    counts: dict[str, dict[date, dict[str, int]]] = {c: defaultdict(dict) for c in columns}
    for r in rows:
        for i, column in enumerate(columns):
            if r[f"v{i}"] is not None:
                counts[column][as_date(r["day"])][str(r[f"v{i}"])] = int(r["n"])
                break
    return counts


def _judge_column(
    ctx: RuleContext,
    rule: ColumnMix,
    column: str,
    counts: dict[date, dict[str, int]],
    totals: dict[date, int],
    training: list[date],
) -> list[dict[str, Any]]:
    pooled: dict[str, int] = defaultdict(int)
    for d in training:
        for value, n in counts.get(d, {}).items():
            pooled[value] += n
    rows_seen = sum(totals[d] for d in training)
    tracked = sorted(v for v, n in pooled.items() if n >= rule.min_share * rows_seen)

    def bucket(day: date) -> dict[str, int]:
        out = {v: counts.get(day, {}).get(v, 0) for v in tracked}
        out[OTHER] = totals.get(day, 0) - sum(out.values())
        return out

    today = bucket(ctx.day)
    history = {d: bucket(d) for d in training}
    findings = []
    for value in [*tracked, OTHER]:
        test = share_test(
            [(history[d][value], totals[d]) for d in training],
            today[value],
            totals[ctx.day],
            min_points=rule.min_training_points,
        )
        if test is None:
            continue
        share = today[value] / totals[ctx.day]
        findings.append(
            {
                "column": column,
                "value": value,
                "share": round(share, 4),
                "expected": round(test.expected, 4),
                "z": round(test.z, 1),
                "failed": test.deviates(
                    share, rule.sensitivity, rule.min_abs_change, rule.min_relative_change
                ),
            }
        )
    return findings


def _verdict(
    ctx: RuleContext,
    rule: ColumnMix,
    cut: DayCut,
    columns: list[str],
    findings: list[dict[str, Any]],
    points: int,
) -> CheckResult:
    failing = sorted((f for f in findings if f["failed"]), key=lambda f: -abs(f["z"]))
    worst = failing[0] if failing else max(findings, key=lambda f: abs(f["z"]), default=None)
    where = f"{ctx.asset.asset} on {ctx.day} (day: {cut.label})"
    if failing:
        parts = "; ".join(
            f"{f['column']} = {f['value']!r}: {f['share']:.1%} of rows "
            f"(usually {f['expected']:.1%})"
            for f in failing[:6]
        )
        description = f"The mix of values of {where} moved: {parts}."
    else:
        description = (
            f"The mix of {len(columns)} low-cardinality column(s) of {where} is as usual "
            f"({len(findings)} value shares, {points} training days)."
        )
    return build_result(
        ctx,
        rule,
        rule_type="column_mix",
        failed=bool(failing),
        severity=rule.severity,
        metric=f"share({worst['column']} = {worst['value']})" if worst else "column_mix",
        value=worst["share"] if worst else None,
        low=None,
        high=None,
        description=description,
        kind="mix:" + ",".join(sorted(f"{f['column']}={f['value']}" for f in failing)),
        sample=[{k: v for k, v in f.items() if k != "failed"} for f in failing[: SAMPLE_ROWS * 2]],
        details={
            "day": ctx.day,
            "day_column": cut.label,
            "training_points": points,
            "columns": columns,
            "failing_columns": sorted({f["column"] for f in failing}),
            "expected_share": worst["expected"] if worst else None,
        },
    )


def _not_judged(ctx: RuleContext, rule: ColumnMix, reason: str) -> CheckResult:
    return not_judged(
        ctx,
        rule,
        rule_type="column_mix",
        metric="column_mix",
        value=None,
        description=f"The mix of values of {ctx.asset.asset} on {ctx.day} not judged: {reason}.",
        details={"day": ctx.day, "reason": reason},
    )
