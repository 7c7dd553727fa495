"""The quality rules as Dagster asset checks, with their resource and 30-minute schedule.

One multi-asset check (one op) per asset, one check spec per rule, subsettable. Checks of
dbt assets run in the same run as the asset whenever the asset is selected (Dagster adds an
asset's checks to its selection); blocking specs hold back downstream assets of the run when
they fail with ERROR severity. Raw assets are external (landed by the streaming path), so
their checks run on the `data_quality_checks` schedule every 30 minutes, which also
re-checks every other asset (freshness ages without any materialization).

Results carry: status, metric, value, expected range, severity, the rule's description,
a markdown table of recent values, the sample rows/keys that explain it, and for failures
the fingerprint and the narrative (with who wrote it) that the Slack sensor posts.

No `from __future__ import annotations` here: Dagster inspects the context annotations.
"""

import logging
from datetime import datetime
from typing import Any

import dagster as dg

from platform_assets.genai.quality_agent import QualityNarrator
from platform_assets.quality.engine import QualityEngine, parse_as_of
from platform_assets.quality.history import history_for
from platform_assets.quality.lineage import lineage_context
from platform_assets.quality.monitors import ASSETS
from platform_assets.quality.results import CheckResult, fmt, jsonable
from platform_assets.quality.specs import CROSS_ASSET_TYPES, AssetQuality, Rule, other_assets
from platform_assets.quality.warehouse import warehouse_for
from platform_assets.resources import PlatformResource
from platform_assets.warehouse_runs import warehouse_tags
from platform_core.settings import Settings

log = logging.getLogger(__name__)

CHECKS_JOB = "data_quality_checks"
SCHEDULE_CRON = "*/30 * * * *"
MAX_TABLE_ROWS = 14


def asset_key(asset: str) -> dg.AssetKey:
    return dg.AssetKey(asset.split("/"))


class QualityResource(dg.ConfigurableResource):
    """Runs the rules against the configured warehouse and records them in the history.

    `as_of` (ISO timestamp, UTC) judges the data as of that moment instead of now: for demos
    and replays of simulated days. `narrate=False` skips the narrator (the verdict and the
    history row do not depend on it).
    """

    platform: PlatformResource
    as_of: str = ""
    record: bool = True
    narrate: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **config: Any) -> "QualityResource":
        return cls(platform=PlatformResource.from_settings(settings), **config)

    def engine(self, source: str = "dagster") -> QualityEngine:
        settings = self.platform.settings()
        return QualityEngine(
            warehouse_for(settings),
            history_for(settings) if self.record else None,
            narrator=QualityNarrator.from_settings(settings) if self.narrate else None,
            record=self.record,
            source=source,
        )

    def as_of_time(self) -> datetime | None:
        return parse_as_of(self.as_of)


# --- metadata --------------------------------------------------------------------------


def _cell(value: Any) -> str | int | float | bool | None:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if value is None or isinstance(value, bool | int):
        return value
    return fmt(value) if isinstance(value, float) else str(value)[:200]  # ids stay as they are


def data_table(rows: list[dict[str, Any]], limit: int = MAX_TABLE_ROWS) -> dg.TableMetadataValue:
    """Rows of data as a Dagster table: the UI shows each cell as text, never as Markdown, so
    a value (a message id a client chose) cannot become a link or an image."""
    rows = rows[-limit:]
    headers = list(dict.fromkeys(str(k) for row in rows for k in row))
    return dg.MetadataValue.table(
        records=[dg.TableRecord({h: _cell(row.get(h)) for h in headers}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(h, "string") for h in headers]),
    )


def narrative_text(narrative: dict[str, Any] | None, narrator: str) -> str:
    """The narrative as plain text (shown verbatim by the UI: no Markdown, so no links)."""
    if not narrative:
        return ""
    parts = [narrative.get("summary", ""), "", "Likely causes:"]
    parts += [
        f"{i}. {c.get('cause', '')}" for i, c in enumerate(narrative.get("likely_causes", []), 1)
    ]
    parts += ["", "Evidence:"] + [f"- {e}" for e in narrative.get("evidence", [])]
    parts += ["", "Recommended actions:"]
    parts += [f"- {a}" for a in narrative.get("recommended_actions", [])]
    parts += ["", f"Narrative by {narrator}; the verdict comes from the rule."]
    return "\n".join(parts)


def check_metadata(result: CheckResult) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "status": result.status,
        "rule": result.rule,
        "metric": result.metric,
        "value": dg.MetadataValue.float(float(result.value))
        if result.value is not None
        else dg.MetadataValue.text("n/a"),
        "expected_range": result.expected,
        "severity": result.severity_label,
        "blocking": result.blocking,
        "description": result.description,
        "as_of": result.as_of.isoformat(sep=" ", timespec="seconds") if result.as_of else "",
    }
    if result.recent:
        meta["recent_values"] = data_table(result.recent)
    if result.sample:
        meta["sample"] = data_table(result.sample)
    if result.details:
        meta["details"] = dg.MetadataValue.json(jsonable(result.details))
    if not result.passed:
        meta["fingerprint"] = result.fingerprint
        meta["kind"] = result.kind
        if result.narrative:
            meta["narrative"] = dg.MetadataValue.text(
                narrative_text(result.narrative, result.narrator)
            )
            meta["narrative_json"] = dg.MetadataValue.json(result.narrative)
            meta["narrator"] = result.narrator
    return meta


def to_check_result(result: CheckResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key(result.asset),
        check_name=result.check_name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR
        if result.severity == "error"
        else dg.AssetCheckSeverity.WARN,
        description=result.description[:1000],
        metadata=check_metadata(result),
    )


# --- the checks ------------------------------------------------------------------------


def check_spec(asset: AssetQuality, rule: Rule) -> dg.AssetCheckSpec:
    doc = (rule.__doc__ or "").strip().split("\n")[0]
    severity = getattr(rule, "severity", None) or "error / warn"
    others = [asset_key(a) for a in other_assets(rule) if a != asset.asset]
    return dg.AssetCheckSpec(
        rule.check_name,
        asset=asset_key(asset.asset),
        blocking=rule.blocking,
        description=f"{doc} (severity {severity}{', blocking' if rule.blocking else ''})",
        additional_deps=others or None,
        metadata={"rule_config": repr(rule)[:2000]},
    )


def rule_groups(asset: AssetQuality) -> list[tuple[str, tuple[Rule, ...]]]:
    """(op name, rules) per op: the asset's own rules together; each cross-asset rule apart.

    A referential-integrity or consistency check must run after the other assets it reads
    are built in the same run, so it depends on them; in one op with a blocking check of
    the asset, their ops would wait for that op and that op for them.
    """
    base = f"quality_{asset.layer}_{asset.name}"
    own = tuple(r for r in asset.rules if not isinstance(r, CROSS_ASSET_TYPES))
    groups = [(base, own)] if own else []
    groups += [
        (f"{base}__{r.check_name}", (r,)) for r in asset.rules if isinstance(r, CROSS_ASSET_TYPES)
    ]
    return groups


def build_asset_checks(asset: AssetQuality) -> list[dg.AssetChecksDefinition]:
    return [_build_op(asset, name, rules) for name, rules in rule_groups(asset)]


def _build_op(asset: AssetQuality, name: str, rules: tuple[Rule, ...]) -> dg.AssetChecksDefinition:
    key = asset_key(asset.asset)

    @dg.multi_asset_check(
        specs=[check_spec(asset, rule) for rule in rules],
        name=name,
        can_subset=True,
        description=f"Data-quality rules of {asset.asset} (platform_assets/quality/monitors.py).",
        compute_kind="quality",
    )
    def _quality_checks(context: dg.AssetCheckExecutionContext, quality: QualityResource):
        names = {k.name for k in context.selected_asset_check_keys if k.asset_key == key}
        engine = quality.engine()
        results = engine.evaluate(
            asset,
            checks=names,
            as_of=quality.as_of_time(),
            run_id=context.run.run_id,
            context=lambda: lineage_context(context, key),
        )
        for result in results:
            if not result.passed:
                context.log.warning(
                    f"{result.asset} {result.check_name} "
                    f"{result.severity_label}: {result.description}"
                )
            yield to_check_result(result)

    return _quality_checks


def quality_asset_checks() -> list[dg.AssetChecksDefinition]:
    return [op for asset in ASSETS.values() for op in build_asset_checks(asset)]


def quality_schedule(checks: list[dg.AssetChecksDefinition]) -> dg.ScheduleDefinition:
    job = dg.define_asset_job(
        CHECKS_JOB,
        selection=dg.AssetSelection.checks(*checks),
        executor_def=dg.in_process_executor,  # one process runs every check in sequence
        description="Every data-quality rule of every asset (raw, staging, mart).",
        # a DuckDB reader blocks the writer: queue behind refreshes instead of racing them
        tags={"team": "data", "kind": "data-quality", **warehouse_tags()},
    )
    return dg.ScheduleDefinition(
        name="data_quality_every_30_minutes",
        job=job,
        cron_schedule=SCHEDULE_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Runs the data-quality checks every 30 minutes (freshness ages with time).",
    )
