"""The deterministic rules. Each reads the warehouse with plain SQL and returns a CheckResult.

SQL is written in DuckDB's dialect and kept to what sqlglot transpiles to BigQuery faithfully
(CAST, CASE, COUNT DISTINCT, TRY_CAST, date literals). Identifiers come from `config.py`;
the only literals are dates and timestamps the rules compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from platform_assets.quality.config import (
    AssetQuality,
    Duplicates,
    Freshness,
    NullRate,
    References,
    Rule,
    SchemaChange,
    Volume,
)
from platform_assets.quality.results import CheckResult, fmt
from platform_assets.quality.stats import daily_series, rate_baseline, volume_baseline
from platform_assets.quality.warehouse import Session, Warehouse, quote

SAMPLE_ROWS = 5
RECENT_DAYS = 14


class Memory(Protocol):
    """What rules remember between evaluations (the history store): the last schema seen
    and the days a daily rule already judged anomalous."""

    def last_schema(self, asset: str) -> list[tuple[str, str]] | None: ...

    def save_schema(
        self, asset: str, columns: list[tuple[str, str]], seen_at: datetime
    ) -> None: ...

    def flagged_days(self, asset: str, check_name: str, since: date) -> set[date]: ...


@dataclass
class RuleContext:
    asset: AssetQuality
    warehouse: Warehouse
    session: Session
    as_of: datetime  # naive UTC, like the warehouse's timestamps
    schemas: Memory | None = None
    remember_schema: bool = True

    @property
    def day(self) -> date:
        """The day daily rules judge: the last complete UTC day before `as_of`."""
        return self.as_of.date() - timedelta(days=1)

    def rel(self, asset: str | None = None) -> str:
        return self.warehouse.relation(asset or self.asset.asset)

    def query(self, sql: str) -> list[dict[str, Any]]:
        return self.session.query(sql)


def date_literal(day: date) -> str:
    return f"date '{day.isoformat()}'"


def ts_literal(moment: datetime) -> str:
    return f"timestamp '{moment.replace(tzinfo=None).isoformat(sep=' ')}'"


def as_day_expr(column: str) -> str:
    return f"cast({quote(column)} as date)"


def naive(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            from datetime import UTC

            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    return datetime.fromisoformat(str(value)).replace(tzinfo=None)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _result(
    ctx: RuleContext,
    rule: Rule,
    *,
    rule_type: str,
    failed: bool,
    severity: str,
    metric: str,
    value: float | None,
    low: float | None,
    high: float | None,
    description: str,
    kind: str = "",
    **extra: Any,
) -> CheckResult:
    return CheckResult(
        asset=ctx.asset.asset,
        check_name=rule.check_name,
        rule=rule_type,
        passed=not failed,
        severity=severity,
        metric=metric,
        value=value,
        expected_low=low,
        expected_high=high,
        description=description,
        kind=kind if failed else "",
        blocking=rule.blocking,
        status=("fail" if severity == "error" else "warn") if failed else "pass",
        as_of=ctx.as_of,
        **extra,
    )


# --- freshness -------------------------------------------------------------------------


def _lag_minutes(reference: datetime, newest: datetime | None) -> float | None:
    if newest is None:
        return None
    return max(0.0, (reference - newest).total_seconds() / 60)


def _usual_lags(ctx: RuleContext, rule: Freshness) -> list[float]:
    """The lag the asset had at this time of day on each of the last `history_days` days."""
    col = quote(rule.column)
    moments = [ctx.as_of - timedelta(days=k) for k in range(1, rule.history_days + 1)]
    newest = ", ".join(
        f"max(case when {col} <= {ts_literal(m)} then {col} end) as n{k}"
        for k, m in enumerate(moments)
    )
    row = ctx.query(
        f"select {newest} from {ctx.rel()} where {col} <= {ts_literal(moments[0])} "
        f"and {col} >= {ts_literal(moments[-1] - timedelta(days=1))}"
    )[0]
    lags = [_lag_minutes(m, naive(row[f"n{k}"])) for k, m in enumerate(moments)]
    return [lag for lag in lags if lag is not None]


def check_freshness(ctx: RuleContext, rule: Freshness) -> CheckResult:
    col = quote(rule.column)
    newest = naive(
        ctx.query(
            f"select max({col}) as newest from {ctx.rel()} where {col} <= {ts_literal(ctx.as_of)}"
        )[0]["newest"]
    )
    reference = ctx.as_of
    against = "now"
    if rule.relative_to:
        upstream = naive(
            ctx.query(
                f"select max({col}) as newest from {ctx.rel(rule.relative_to)} "
                f"where {col} <= {ts_literal(ctx.as_of)}"
            )[0]["newest"]
        )
        against = rule.relative_to
        reference = upstream or ctx.as_of
    error_min = rule.error_after.total_seconds() / 60
    warn_min = rule.warn_after.total_seconds() / 60 if rule.warn_after else error_min
    details: dict[str, Any] = {
        "newest": newest,
        "reference": reference,
        "against": against,
        "warn_after_minutes": warn_min,
        "error_after_minutes": error_min,
    }
    lag = _lag_minutes(reference, newest)
    if lag is None:
        return _result(
            ctx,
            rule,
            rule_type="freshness",
            failed=True,
            severity="error",
            metric="lag_minutes",
            value=None,
            low=None,
            high=warn_min,
            description=f"{ctx.asset.asset} has no rows with {rule.column} "
            f"up to {ctx.as_of:%Y-%m-%d %H:%M} UTC.",
            kind="empty",
            details=details,
        )
    allowance = 0.0
    if rule.adaptive and not rule.relative_to and lag > warn_min:
        usual = _usual_lags(ctx, rule)
        if usual:
            allowance = rule.allowance_factor * max(usual)
            details["usual_lags_minutes"] = [round(v, 1) for v in usual]
    limit_warn, limit_error = max(warn_min, allowance), max(error_min, allowance)
    details["allowance_minutes"] = round(allowance, 1)
    failed = lag > limit_warn
    severity = "error" if lag > limit_error else "warn"
    sample: list[dict[str, Any]] = []
    if rule.explain_by and failed:
        group = quote(rule.explain_by)
        sample = [
            {
                rule.explain_by: r["grp"],
                "newest": r["newest"],
                "lag_minutes": round((reference - naive(r["newest"])).total_seconds() / 60, 1),
            }
            for r in ctx.query(
                f"select {group} as grp, max({col}) as newest from {ctx.rel()} "
                f"where {col} <= {ts_literal(ctx.as_of)} "
                f"and {col} >= {ts_literal(ctx.as_of - timedelta(days=1))} "
                f"group by {group} order by newest limit {SAMPLE_ROWS}"
            )
        ]
    behind = "behind " + against if rule.relative_to else "old"
    sla = (
        f"SLA: warn after {fmt(warn_min)}, critical after {fmt(error_min)} minutes"
        if rule.warn_after
        else f"SLA: critical after {fmt(error_min)} minutes"
    )
    if allowance > error_min:
        usual_max = round(allowance / rule.allowance_factor, 1)
        sla += (
            f"; at this time of day it is usually up to {fmt(usual_max)} minutes old, "
            f"so up to {fmt(round(allowance, 1))} is tolerated"
        )
    description = (
        f"Newest {rule.column} in {ctx.asset.asset} is {newest:%Y-%m-%d %H:%M} UTC: "
        f"{fmt(round(lag, 1))} minutes {behind} ({sla})."
    )
    return _result(
        ctx,
        rule,
        rule_type="freshness",
        failed=failed,
        severity=severity if failed else "error",
        metric="lag_minutes",
        value=round(lag, 2),
        low=0.0,
        high=round(limit_warn, 2),
        description=description,
        kind="late",
        sample=sample,
        details=details,
    )


# --- volume ----------------------------------------------------------------------------


def check_volume(ctx: RuleContext, rule: Volume) -> CheckResult:
    window = rule.seasonal_training_days if rule.seasonality else rule.training_days
    start = ctx.day - timedelta(days=window)
    day_expr = as_day_expr(rule.date_column)
    rows = ctx.query(
        f"select {day_expr} as day, {rule.measure} as value from {ctx.rel()} "
        f"where {day_expr} between {date_literal(start)} and {date_literal(ctx.day)} "
        f"group by {day_expr}"
    )
    values = {_as_date(r["day"]): float(r["value"] or 0) for r in rows}
    series = daily_series(values, start, ctx.day)
    value = values.get(ctx.day, 0.0)
    recent = [{"day": d, rule.metric: v} for d, v in series[-RECENT_DAYS:]]
    # days this check already judged anomalous are incidents, not normal behaviour
    incidents = (
        ctx.schemas.flagged_days(ctx.asset.asset, rule.check_name, start)
        if ctx.schemas is not None
        else set()
    )
    incidents.discard(ctx.day)
    baseline = volume_baseline(
        [(d, v) for d, v in series if d < ctx.day and d not in incidents],
        ctx.day,
        value,
        sensitivity=rule.sensitivity,
        min_points=rule.min_training_points,
        seasonal=rule.seasonality == "day_of_week",
        min_relative_change=rule.min_relative_change,
    )
    if baseline is None:
        points = sum(1 for d, _ in series if d < ctx.day)
        return _result(
            ctx,
            rule,
            rule_type="volume",
            failed=False,
            severity=rule.severity,
            metric=rule.metric,
            value=value,
            low=None,
            high=None,
            description=f"{rule.metric} on {ctx.day}: {fmt(value)}; not judged, "
            f"{points} training day(s) < {rule.min_training_points}.",
            recent=recent,
            details={"day": ctx.day, "training_points": points},
        )
    failed = baseline.is_anomalous(value)
    direction = "drop" if value < baseline.predicted else "spike"
    change = value / baseline.predicted - 1 if baseline.predicted else 0.0
    details = {
        "day": ctx.day,
        "predicted": round(baseline.predicted, 2),
        "z_score": round(baseline.z, 2),
        "sensitivity": rule.sensitivity,
        "relative_change": round(change, 4),
        "training_points": baseline.points,
        "weekday_seasonality": baseline.seasonal,
        "trend": baseline.trend,
        "outliers_dropped": baseline.dropped_outliers,
        "incident_days_excluded": sorted(incidents),
        "sigma_anscombe": round(baseline.sigma, 3),
    }
    sample = _volume_breakdown(ctx, rule) if failed and rule.explain_by else []
    description = (
        f"{rule.metric} of {ctx.asset.asset} on {ctx.day} ({ctx.day:%A}) was {fmt(value)}, "
        f"{abs(change):.0%} {'below' if change < 0 else 'above'} the expected "
        f"{fmt(round(baseline.predicted))} (z = {baseline.z:+.1f}; normal range "
        f"{fmt(round(baseline.low))} .. {fmt(round(baseline.high))} from {baseline.points} "
        f"training days{', weekday-adjusted' if baseline.seasonal else ''})."
    )
    return _result(
        ctx,
        rule,
        rule_type="volume",
        failed=failed,
        severity=rule.severity,
        metric=rule.metric,
        value=value,
        low=round(baseline.low, 2),
        high=round(baseline.high, 2),
        description=description,
        kind=direction,
        recent=recent,
        sample=sample,
        details=details,
    )


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


# --- null rate -------------------------------------------------------------------------


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
    by_day = {_as_date(r["day"]): r for r in rows if r["total"]}
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
        return _result(
            ctx,
            rule,
            rule_type="null_rate",
            failed=False,
            severity=rule.severity,
            metric="null_rate",
            value=None,
            low=None,
            high=None,
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
    return _result(
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


# --- duplicates ------------------------------------------------------------------------


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
    return _result(
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
    rates = {_as_date(r["day"]): 1 - r["distinct_keys"] / r["total"] for r in rows if r["total"]}
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
        return _result(
            ctx,
            rule,
            rule_type="duplicates",
            failed=False,
            severity=rule.severity,
            metric="duplicate_rate",
            value=rate,
            low=None,
            high=None,
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
    return _result(
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


# --- schema ----------------------------------------------------------------------------


def check_schema(ctx: RuleContext, rule: SchemaChange) -> CheckResult:
    current = ctx.session.columns(ctx.asset.asset)
    previous = ctx.schemas.last_schema(ctx.asset.asset) if ctx.schemas else None
    if previous is None:
        if ctx.schemas and ctx.remember_schema:
            ctx.schemas.save_schema(ctx.asset.asset, current, ctx.as_of)
        return _result(
            ctx,
            rule,
            rule_type="schema",
            failed=False,
            severity=rule.removed,
            metric="schema_changes",
            value=0.0,
            low=0.0,
            high=0.0,
            description=f"{len(current)} columns; first schema seen, recorded as the baseline."
            if ctx.schemas
            else f"{len(current)} columns; no stored schema to compare with.",
            details={"columns": len(current)},
        )
    before, after = dict(previous), dict(current)
    changes: list[dict[str, Any]] = []
    for name, typ in current:
        if name not in before:
            changes.append({"change": "added", "column": name, "type": typ})
        elif before[name] != typ:
            changes.append(
                {"change": "type_changed", "column": name, "from": before[name], "to": typ}
            )
    for name, typ in previous:
        if name not in after:
            changes.append({"change": "removed", "column": name, "type": typ})
    severities = {"added": rule.added, "removed": rule.removed, "type_changed": rule.type_changed}
    severity = "error" if any(severities[c["change"]] == "error" for c in changes) else "warn"
    if changes and ctx.schemas and ctx.remember_schema:
        ctx.schemas.save_schema(ctx.asset.asset, current, ctx.as_of)
    summary = ", ".join(
        f"{c['change'].replace('_', ' ')} {c['column']}"
        + (f" ({c['from']} -> {c['to']})" if c["change"] == "type_changed" else f" ({c['type']})")
        for c in changes
    )
    description = (
        f"Schema of {ctx.asset.asset} changed since it was last seen: {summary}."
        if changes
        else f"Schema of {ctx.asset.asset} unchanged ({len(current)} columns)."
    )
    kind = "schema:" + ";".join(sorted(f"{c['change']}:{c['column']}" for c in changes))
    return _result(
        ctx,
        rule,
        rule_type="schema",
        failed=bool(changes),
        severity=severity if changes else rule.removed,
        metric="schema_changes",
        value=float(len(changes)),
        low=0.0,
        high=0.0,
        description=description,
        kind=kind,
        sample=changes[: SAMPLE_ROWS * 2],
        details={"columns": len(current), "changes": changes},
    )


# --- referential integrity -------------------------------------------------------------


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
    return _result(
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


RULES: dict[type, Callable[[RuleContext, Any], CheckResult]] = {
    Freshness: check_freshness,
    Volume: check_volume,
    NullRate: check_nulls,
    Duplicates: check_duplicates,
    SchemaChange: check_schema,
    References: check_references,
}
RULE_TYPES = {
    Freshness: "freshness",
    Volume: "volume",
    NullRate: "null_rate",
    Duplicates: "duplicates",
    SchemaChange: "schema",
    References: "references",
}


def evaluate_rule(ctx: RuleContext, rule: Rule) -> CheckResult:
    return RULES[type(rule)](ctx, rule)
