"""The monitoring tables' shape, shared by the DuckDB and BigQuery history stores.

`data_quality_checks` holds every evaluation (one row per rule result); `schema_snapshots`
the schemas last seen; the views `quality_trends` and `quality_latest` are written once in
DuckDB's dialect (BigQuery's come from sqlglot).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from platform_assets.quality.results import CheckResult, dumps

TABLE = "data_quality_checks"
SCHEMAS_TABLE = "schema_snapshots"

# (name, DuckDB type, BigQuery type, description)
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("evaluation_id", "VARCHAR", "STRING", "Unique id of this row"),
    ("evaluated_at", "TIMESTAMP", "TIMESTAMP", "When the rule ran (UTC)"),
    ("as_of", "TIMESTAMP", "TIMESTAMP", "The moment the data was judged as of (UTC)"),
    ("asset", "VARCHAR", "STRING", "Asset key, e.g. staging/stg_orders"),
    ("check_name", "VARCHAR", "STRING", "Asset check name"),
    ("rule", "VARCHAR", "STRING", "freshness, volume, null_rate, duplicates, schema, references"),
    ("passed", "BOOLEAN", "BOOL", "The rule's verdict"),
    ("status", "VARCHAR", "STRING", "pass, warn, fail (critical) or error (not evaluated)"),
    ("severity", "VARCHAR", "STRING", "error (critical) or warn"),
    ("blocking", "BOOLEAN", "BOOL", "Whether a failure blocks downstream assets"),
    ("metric", "VARCHAR", "STRING", "What was measured"),
    ("value", "DOUBLE", "FLOAT64", "The measured value"),
    ("expected_low", "DOUBLE", "FLOAT64", "Lower end of the expected range"),
    ("expected_high", "DOUBLE", "FLOAT64", "Upper end of the expected range"),
    ("kind", "VARCHAR", "STRING", "What failed (drop, spike, nulls:col, orphans, ...)"),
    ("fingerprint", "VARCHAR", "STRING", "asset+check+kind+severity hash (alert suppression)"),
    ("description", "VARCHAR", "STRING", "The rule's one-line finding"),
    ("sample", "VARCHAR", "STRING", "JSON: rows or keys that explain the result"),
    ("details", "VARCHAR", "STRING", "JSON: baseline, z-score, per-column figures"),
    ("narrative", "VARCHAR", "STRING", "JSON: summary, likely causes, evidence, actions"),
    ("narrator", "VARCHAR", "STRING", "Who wrote the narrative (model or deterministic)"),
    ("run_id", "VARCHAR", "STRING", "Dagster run id, when run by Dagster"),
    ("source", "VARCHAR", "STRING", "dagster, cli or bench"),
)

TRENDS_SQL = f"""
select
    asset,
    cast(evaluated_at as date) as day,
    count(*) as evaluations,
    count(distinct check_name) as checks,
    sum(case when passed then 0 else 1 end) as failures,
    sum(case when not passed and severity = 'error' then 1 else 0 end) as critical_failures,
    sum(case when not passed and severity = 'warn' then 1 else 0 end) as warnings,
    avg(case when passed then 1.0 else 0.0 end) as pass_rate
from {TABLE}
group by asset, cast(evaluated_at as date)
"""

LATEST_SQL = f"""
select * exclude (row_rank)
from (
    select
        *,
        row_number() over (
            partition by asset, check_name order by evaluated_at desc, evaluation_id desc
        ) as row_rank
    from {TABLE}
) as ranked
where row_rank = 1
"""


def flagged_days_of(rows: list[dict[str, Any]], since: date) -> set[date]:
    days = set()
    for row in rows:
        value = json.loads(row["details"] or "{}").get("day")
        if value and date.fromisoformat(value[:10]) >= since:
            days.add(date.fromisoformat(value[:10]))
    return days


@dataclass
class AssetMemory:
    """What an evaluation of one asset needs from its history, read in one go: the days each
    daily check already judged anomalous, and each check's recent results."""

    flagged: dict[str, set[date]] = field(default_factory=dict)
    recent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, flagged_rows: list[dict[str, Any]], recent_rows: list[dict[str, Any]], since: date
    ) -> AssetMemory:
        memory = cls()
        for row in flagged_rows:
            memory.flagged.setdefault(row["check_name"], set()).update(
                flagged_days_of([row], since)
            )
        for row in recent_rows:  # newest first
            memory.recent.setdefault(row["check_name"], []).append(row)
        return memory


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def to_row(result: CheckResult, *, run_id: str, source: str) -> dict[str, Any]:
    return {
        "evaluation_id": uuid.uuid4().hex,
        "evaluated_at": result.evaluated_at or utcnow(),
        "as_of": result.as_of,
        "asset": result.asset,
        "check_name": result.check_name,
        "rule": result.rule,
        "passed": result.passed,
        "status": result.status,
        "severity": result.severity,
        "blocking": result.blocking,
        "metric": result.metric,
        "value": None if result.value is None else float(result.value),
        "expected_low": result.expected_low,
        "expected_high": result.expected_high,
        "kind": result.kind,
        "fingerprint": result.fingerprint,
        "description": result.description,
        "sample": dumps(result.sample),
        "details": dumps(result.details),
        "narrative": dumps(result.narrative) if result.narrative else None,
        "narrator": result.narrator or None,
        "run_id": run_id or None,
        "source": source,
    }
