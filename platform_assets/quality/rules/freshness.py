"""Freshness: how late the newest row is, against the SLA and the usual lag at this hour."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from platform_assets.quality.results import CheckResult, fmt
from platform_assets.quality.rules.context import (
    SAMPLE_ROWS,
    RuleContext,
    as_date,
    build_result,
    date_literal,
    naive,
    ts_literal,
)
from platform_assets.quality.specs import SAME_ROWS_WINDOW_DAYS, Freshness
from platform_assets.quality.warehouse import quote


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


def _upstream_newest(ctx: RuleContext, rule: Freshness, here: datetime | None) -> datetime | None:
    """The newest `column` upstream (`relative_to`); with `same_rows`, of the upstream rows
    this asset does not hold yet, or `here` (this asset's newest) when it holds them all."""
    col = quote(rule.column)
    upstream = ctx.rel(rule.relative_to)
    bounds = f"upstream.{col} <= {ts_literal(ctx.as_of)}"
    newest_sql = f"select max(upstream.{col}) as newest from {upstream} as upstream"
    if here is None or not rule.same_rows:
        return naive(ctx.query(f"{newest_sql} where {bounds}")[0]["newest"])
    # only rows newer than this asset's newest can make it behind
    bounds += f" and upstream.{col} > {ts_literal(here)}"
    dates = quote(rule.same_rows_date) if rule.same_rows_date else None
    found = ctx.query(
        f"select max(upstream.{col}) as newest"
        + (f", min(upstream.{dates}) as low, max(upstream.{dates}) as high" if dates else "")
        + f" from {upstream} as upstream where {bounds}"
    )[0]
    if found["newest"] is None:  # nothing upstream is newer than here
        return here
    # which of those are not here yet (another delivery of a message here is), looked up
    # here on their dates only (a partitioned table reads those partitions)
    match = " and ".join(f"here.{quote(c)} = upstream.{quote(c)}" for c in rule.same_rows)
    if dates:
        window = timedelta(days=SAME_ROWS_WINDOW_DAYS)
        low, high = as_date(found["low"]) - window, as_date(found["high"]) + window
        match += f" and here.{dates} between {date_literal(low)} and {date_literal(high)}"
    missing = ctx.query(
        f"{newest_sql} where {bounds} "
        f"and not exists (select 1 from {ctx.rel()} as here where {match})"
    )[0]
    return naive(missing["newest"]) or here


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
        against = rule.relative_to
        reference = _upstream_newest(ctx, rule, newest) or ctx.as_of
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
        return build_result(
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
    return build_result(
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
