"""Asset check evaluations, as the alert sensor reads them from the Dagster instance.

Failed asset checks do not fail runs, so run-failure sensors never see them. The sensor
reads the check execution history of every check in the code location (the agent's and
the dbt tests), in order, per check key: a planned execution is updated in place when it
completes, so the cursor keeps the last processed record id per check, not one global id.
Evaluations of a run still in progress wait for the run to finish, so an incident's
message lists everything its run found, not the first check that failed.

No `from __future__ import annotations` here: this module sits next to Dagster code that
inspects annotations, and keeps to the same convention.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES,
)

from platform_assets.quality.dbt_tests import rule_for_dbt_test
from platform_assets.quality.incidents import Failure

FIRST_RUN_LOOKBACK_SECONDS = 3600
HISTORY_PAGE = 25


def plain(value: Any) -> Any:
    return getattr(value, "value", value)


@dataclass
class Evaluation:
    record_id: int
    asset: str
    asset_path: list[str]
    check: str
    passed: bool
    severity: str  # ERROR or WARN
    description: str
    metadata: dict[str, Any]
    run_id: str
    timestamp: float

    @property
    def check_key(self) -> str:
        return f"{self.asset}:{self.check}"

    @property
    def fingerprint(self) -> str:
        given = self.metadata.get("fingerprint")
        if given:
            return str(given)
        raw = "|".join((self.asset, self.check, "failed", self.severity.lower()))
        return hashlib.sha1(raw.encode()).hexdigest()[:12]

    @property
    def is_quality_rule(self) -> bool:
        return "rule" in self.metadata and "expected_range" in self.metadata

    def summary(self) -> str:
        """The metric against what was expected, in one line."""
        meta = self.metadata
        if self.is_quality_rule:
            value = meta.get("value")
            value_text = f"{value:,.4g}" if isinstance(value, float) else str(value)
            return f"{meta.get('metric')} = {value_text} (expected {meta.get('expected_range')})"
        failed_rows = meta.get("dagster_dbt/failed_row_count")
        if failed_rows is not None:
            return f"dbt test: {failed_rows} failing row(s) (expected 0)"
        return (self.description or "the check failed")[:300]

    def to_failure(self, reads: tuple[str, ...] = ()) -> Failure:
        if self.is_quality_rule:
            rule, kind = str(self.metadata.get("rule", "")), str(self.metadata.get("kind", ""))
        else:
            rule, kind = rule_for_dbt_test(self.check)
        return Failure(
            check_key=self.check_key,
            asset=self.asset,
            check=self.check,
            severity=self.severity,
            summary=self.summary()[:300],
            reads=reads,
            blocking=self.metadata.get("blocking") is True,
            since=self.timestamp,
            run_id=self.run_id,
            rule=rule,
            kind=kind,
            description=str(self.metadata.get("description") or self.description)[:600],
        )


def evaluation_from_record(record: Any) -> Evaluation | None:
    event = record.event
    evaluation = event.asset_check_evaluation if event is not None else None
    if evaluation is None:
        return None
    return Evaluation(
        record_id=record.id,
        asset=evaluation.asset_key.to_user_string(),
        asset_path=list(evaluation.asset_key.path),
        check=evaluation.check_name,
        passed=evaluation.passed,
        severity=evaluation.severity.value,
        description=evaluation.description or "",
        metadata={k: plain(v) for k, v in (evaluation.metadata or {}).items()},
        run_id=record.run_id or "",
        timestamp=event.timestamp,
    )


def run_finished(instance: dg.DagsterInstance) -> Callable[[str], bool]:
    """Whether a run is over (memoised per tick); evaluations without a run count as over."""
    seen: dict[str, bool] = {}

    def finished(run_id: str) -> bool:
        if not run_id:
            return True
        if run_id not in seen:
            run = instance.get_run_by_id(run_id)
            seen[run_id] = run is None or run.is_finished
        return seen[run_id]

    return finished


def new_evaluations(
    instance: dg.DagsterInstance,
    check_keys: list[dg.AssetCheckKey],
    seen: dict[str, int],
    started: bool,
    now: float,
) -> list[Evaluation]:
    """Completed evaluations not processed yet, oldest first, from finished runs.

    The first tick (`started` False) only considers the latest evaluation of each check,
    and only if it is at most an hour old, so turning the sensor on does not replay
    history into Slack.
    """
    storage = instance.event_log_storage
    latest = storage.get_latest_asset_check_execution_by_key(check_keys)
    finished = run_finished(instance)
    found: list[Evaluation] = []
    for key, latest_record in latest.items():
        name = key.to_user_string()
        last_seen = seen.get(name, 0)
        if (
            latest_record is None
            or latest_record.id <= last_seen
            and latest_record.status in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        ):
            continue
        records = storage.get_asset_check_execution_history(key, limit=HISTORY_PAGE)
        fresh = []
        for record in records:  # newest first
            if record.id <= last_seen:
                break
            if record.status not in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES:
                continue  # in flight: completes in place, seen on a later tick
            evaluation = evaluation_from_record(record)
            if evaluation is not None:
                fresh.append(evaluation)
        if any(not finished(e.run_id) for e in fresh):
            continue  # its run is still going: the whole check waits for the next tick
        if not started:
            fresh = [e for e in fresh[:1] if now - e.timestamp <= FIRST_RUN_LOOKBACK_SECONDS]
            completed = [
                r.id for r in records if r.status in COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
            ]
            if completed and not fresh:
                seen[name] = max(completed)
        found += fresh
    return sorted(found, key=lambda e: e.record_id)
