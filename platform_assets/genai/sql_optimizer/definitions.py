"""The SQL optimizer in the code location: an audit asset, its job and the sensor that runs it.

- asset `genai/sql_optimizer_audit`: every dbt model and analysis through the optimizer
  (BigQuery rendering of the project); metadata in the UI: findings per rule, estimated
  bytes, bytes saved by verified rewrites, and a table per query.
- job `sql_optimizer_audit`: a reader of the warehouse's read snapshot, so it never queues
  behind, nor holds up, a refresh.
- sensor `sql_optimizer_after_prepare` (RUNNING): `make prepare` rewrites dbt's manifest;
  when what the audit depends on changed (the fingerprint of the models, analyses and
  macros), it requests one audit run.

`build_defs(settings)` returns them as one `dagster.Definitions`.
"""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from platform_assets.dbt.project import dbt_project
from platform_assets.genai.sql_optimizer.audit import audit, summarize
from platform_assets.genai.sql_optimizer.dbt_render import fingerprint, load_manifest
from platform_assets.genai.sql_optimizer.optimizer import build_optimizer
from platform_assets.genai.sql_optimizer.report import QueryReport, human_bytes

AUDIT_KEY = dg.AssetKey(["genai", "sql_optimizer_audit"])
JOB_NAME = "sql_optimizer_audit"
SENSOR_INTERVAL = timedelta(seconds=60)


def _row(report: QueryReport) -> str:
    rules = ", ".join(sorted({f.rule for f in report.findings})) or "none"
    if report.rewrite is None:
        rewrite = "none"
    else:
        rewrite = (
            "verified " if report.rewrite.verified else "unverified "
        ) + report.rewrite.source
    after = human_bytes(report.bytes_after) if report.bytes_after is not None else "-"
    cost = f"{human_bytes(report.bytes_before)} -> {after}"
    return f"| {report.query} | {len(report.findings)} | {rules} | {cost} | {rewrite} |"


def audit_table(reports: list[QueryReport]) -> str:
    lines = [
        "| query | findings | rules | estimated bytes | rewrite |",
        "| --- | --- | --- | --- | --- |",
    ]
    return "\n".join(lines + [_row(r) for r in reports])


def audit_metadata(reports: list[QueryReport], version: str) -> dict[str, Any]:
    summary = summarize(reports)
    return {
        "queries": summary.queries,
        "findings": sum(summary.findings_per_rule.values()),
        "findings_per_rule": dg.MetadataValue.json(summary.findings_per_rule),
        "rewrites": summary.rewrites,
        "verified_rewrites": summary.verified,
        "estimated_bytes_before": summary.bytes_before,
        "estimated_bytes_saved": summary.bytes_saved,
        "summary": summary.text(),
        "report": dg.MetadataValue.md(audit_table(reports)),
        "findings_detail": dg.MetadataValue.json([r.to_json() for r in reports]),
        "project_fingerprint": version,
    }


def manifest_fingerprint(path: Path) -> str | None:
    try:
        return fingerprint(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        return None


def build_defs(settings: Any) -> dg.Definitions:
    """The optimizer's asset, job and sensor for the code location."""

    @dg.asset(
        key=AUDIT_KEY,
        group_name="genai",
        kinds={"python", "sql"},
        owners=["team:data-platform"],
        description="SQL optimizer audit of every dbt model and analysis: findings, estimated "
        "bytes and verified rewrites (sql-optimizer audit).",
    )
    def sql_optimizer_audit(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        manifest = load_manifest(settings, refresh=True)
        reports = audit(build_optimizer(settings, manifest=manifest), manifest)
        version = fingerprint(manifest)
        context.log.info(summarize(reports).text())
        return dg.MaterializeResult(
            metadata=audit_metadata(reports, version), data_version=dg.DataVersion(version)
        )

    job = dg.define_asset_job(JOB_NAME, selection=[AUDIT_KEY])

    @dg.sensor(
        name="sql_optimizer_after_prepare",
        job=job,
        minimum_interval_seconds=int(SENSOR_INTERVAL.total_seconds()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Audits the project's SQL when `make prepare` produced a changed manifest.",
    )
    def after_prepare(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        version = manifest_fingerprint(Path(dbt_project.manifest_path))
        if version is None:
            return dg.SkipReason("no dbt manifest yet: run `make prepare`")
        if version == context.cursor:
            return dg.SkipReason("models and analyses unchanged since the last audit")
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=version)], cursor=version)

    return dg.Definitions(assets=[sql_optimizer_audit], jobs=[job], sensors=[after_prepare])
