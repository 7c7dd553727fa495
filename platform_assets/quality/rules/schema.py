"""Schema changes: columns added, removed or retyped since the last schema seen."""

from __future__ import annotations

from typing import Any

from platform_assets.quality.results import CheckResult
from platform_assets.quality.rules.context import SAMPLE_ROWS, RuleContext, build_result
from platform_assets.quality.specs import SchemaChange


def check_schema(ctx: RuleContext, rule: SchemaChange) -> CheckResult:
    current = ctx.session.columns(ctx.asset.asset)
    previous = ctx.schemas.last_schema(ctx.asset.asset) if ctx.schemas else None
    if previous is None:
        if ctx.schemas and ctx.remember_schema:
            ctx.schemas.save_schema(ctx.asset.asset, current, ctx.as_of)
        return build_result(
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
    return build_result(
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
