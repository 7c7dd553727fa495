"""Runs an asset's rules, narrates what failed, records everything in the history store.

Used by the Dagster checks, the CLI and the evaluation alike. A rule that raises (missing
table, lock held too long) becomes a `status="error"` warning result rather than an
exception: an unreadable warehouse is reported, it does not fail the run. The narrator can
neither fail the evaluation nor touch a verdict: it only fills `narrative`/`narrator`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from platform_assets.quality.calendar import CALENDAR_ASSET, load_calendar
from platform_assets.quality.history import HistoryStore
from platform_assets.quality.results import CheckResult
from platform_assets.quality.rules import RULE_TYPES, RuleContext, evaluate_rule
from platform_assets.quality.specs import AssetQuality, Rule
from platform_assets.quality.warehouse import Warehouse

log = logging.getLogger(__name__)

NARRATIVE_REUSE = timedelta(hours=24)  # same failure (fingerprint): reuse the narrative


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_as_of(text: str | None) -> datetime | None:
    """An ISO timestamp (UTC if no offset) as naive UTC; empty: None (= now)."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def error_result(asset: AssetQuality, rule: Rule, error: Exception, as_of: datetime) -> CheckResult:
    return CheckResult(
        asset=asset.asset,
        check_name=rule.check_name,
        rule=RULE_TYPES[type(rule)],
        passed=False,
        severity="warn",
        metric="evaluation_error",
        value=None,
        expected_low=None,
        expected_high=None,
        description=f"Could not evaluate {rule.check_name} on {asset.asset}: "
        f"{type(error).__name__}: {str(error)[:300]}",
        kind="evaluation_error",
        blocking=False,
        status="error",
        as_of=as_of,
        details={"error": f"{type(error).__name__}: {error}"[:1000]},
    )


class QualityEngine:
    def __init__(
        self,
        warehouse: Warehouse,
        history: HistoryStore | None = None,
        *,
        narrator: Any | None = None,
        record: bool = True,
        remember_schema: bool | None = None,
        source: str = "dagster",
    ) -> None:
        self.warehouse = warehouse
        self.history = history
        self.narrator = narrator
        self.record = record
        self.remember_schema = record if remember_schema is None else remember_schema
        self.source = source

    def evaluate(
        self,
        asset: AssetQuality,
        *,
        checks: Iterable[str] | None = None,
        as_of: datetime | None = None,
        run_id: str = "",
        context: Callable[[], dict[str, Any]] | dict[str, Any] | None = None,
    ) -> list[CheckResult]:
        as_of = as_of or utcnow()
        wanted = set(checks) if checks is not None else None
        rules = [r for r in asset.rules if wanted is None or r.check_name in wanted]
        results: list[CheckResult] = []
        try:
            session_cm = self.warehouse.session()
            session = session_cm.__enter__()
        except Exception as error:
            results = [error_result(asset, rule, error, as_of) for rule in rules]
        else:
            try:
                ctx = RuleContext(
                    asset=asset,
                    warehouse=self.warehouse,
                    session=session,
                    as_of=as_of,
                    schemas=self.history,
                    remember_schema=self.remember_schema,
                    calendar_source=lambda: load_calendar(
                        session, self.warehouse.relation(CALENDAR_ASSET)
                    ),
                )
                for rule in rules:
                    try:
                        results.append(evaluate_rule(ctx, rule))
                    except Exception as error:
                        log.warning(
                            "%s %s could not be evaluated: %s", asset.asset, rule.check_name, error
                        )
                        results.append(error_result(asset, rule, error, as_of))
            finally:
                session_cm.__exit__(None, None, None)
        evaluated_at = utcnow()
        for result in results:
            result.evaluated_at = evaluated_at
            if not result.recent and self.history is not None:
                result.recent = self._recent(result)
        if self.narrator is not None and any(not r.passed for r in results):
            self._narrate([r for r in results if not r.passed], context, evaluated_at)
        if self.record and self.history is not None:
            try:
                self.history.record(results, run_id=run_id, source=self.source)
            except Exception as error:  # the verdict stands even if it cannot be stored
                log.error("could not record quality results of %s: %s", asset.asset, error)
        return results

    def _recent(self, result: CheckResult) -> list[dict[str, Any]]:
        try:
            rows = self.history.recent(result.asset, result.check_name, limit=9)  # type: ignore[union-attr]
        except Exception:
            return []
        rows = [
            {"evaluated_at": r["evaluated_at"], result.metric: r["value"], "status": r["status"]}
            for r in reversed(rows)
        ]
        return rows + [
            {
                "evaluated_at": result.evaluated_at,
                result.metric: result.value,
                "status": result.status,
            }
        ]

    def _narrate(self, failed: list[CheckResult], context: Any, now: datetime) -> None:
        resolved: dict[str, Any] | None = None
        for result in failed:
            reused = None
            if self.history is not None:
                try:
                    reused = self.history.latest_narrative(
                        result.fingerprint, now - NARRATIVE_REUSE
                    )
                except Exception:
                    reused = None
            if reused:
                result.narrative, result.narrator = reused
                continue
            if resolved is None:
                try:
                    resolved = context() if callable(context) else (context or {})
                except Exception as error:
                    log.warning("no lineage context for the narrator: %s", error)
                    resolved = {}
            try:
                narration = self.narrator.narrate(result.to_dict(), resolved)
                result.narrative, result.narrator = narration.to_dict(), narration.narrator
            except Exception as error:  # never let narration break an evaluation
                log.error("narrator failed for %s %s: %s", result.asset, result.check_name, error)
