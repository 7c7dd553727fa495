"""Runs an asset's rules, narrates what failed, records everything in the history store.

The asset's history (days its daily checks already flagged, recent results) is read once
per evaluation; `evaluate_many` checks several assets on one warehouse session.

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
from platform_assets.quality.history import AssetMemory, HistoryStore
from platform_assets.quality.results import CheckResult
from platform_assets.quality.rules import RULE_TYPES, RuleContext, evaluate_rule
from platform_assets.quality.specs import AssetQuality, Rule
from platform_assets.quality.warehouse import Warehouse

log = logging.getLogger(__name__)

NARRATIVE_REUSE = timedelta(hours=24)  # same failure (fingerprint): reuse the narrative
MEMORY_DAYS = timedelta(days=60)  # longer than any rule's training window


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
        try:
            session_cm = self.warehouse.session()
            session = session_cm.__enter__()
        except Exception as error:
            results = [error_result(asset, rule, error, as_of) for rule in rules]
            return self._finish(asset, results, None, run_id, context)
        try:
            return self._evaluate_on(session, asset, rules, as_of, run_id, context)
        finally:
            session_cm.__exit__(None, None, None)

    def evaluate_many(
        self, assets: Iterable[AssetQuality], *, as_of: datetime | None = None, run_id: str = ""
    ) -> list[CheckResult]:
        """Every rule of several assets on one warehouse session: for the CLI and the
        evaluation, which check everything at once (Dagster checks each asset in its own
        op, with its own short session)."""
        as_of = as_of or utcnow()
        assets = list(assets)
        try:
            session_cm = self.warehouse.session()
            session = session_cm.__enter__()
        except Exception:
            return [r for a in assets for r in self.evaluate(a, as_of=as_of, run_id=run_id)]
        try:
            return [
                result
                for asset in assets
                for result in self._evaluate_on(
                    session, asset, list(asset.rules), as_of, run_id, None
                )
            ]
        finally:
            session_cm.__exit__(None, None, None)

    def _evaluate_on(
        self,
        session: Any,
        asset: AssetQuality,
        rules: list[Rule],
        as_of: datetime,
        run_id: str,
        context: Callable[[], dict[str, Any]] | dict[str, Any] | None,
    ) -> list[CheckResult]:
        memory = self._memory(asset, as_of)
        results = self._run_rules(session, asset, rules, as_of, memory)
        return self._finish(asset, results, memory, run_id, context)

    def _finish(
        self,
        asset: AssetQuality,
        results: list[CheckResult],
        memory: AssetMemory | None,
        run_id: str,
        context: Callable[[], dict[str, Any]] | dict[str, Any] | None,
    ) -> list[CheckResult]:
        """Stamp, add recent values, narrate what failed, record everything."""
        evaluated_at = utcnow()
        for result in results:
            result.evaluated_at = evaluated_at
            if not result.recent and memory is not None:
                result.recent = _recent(result, memory.recent.get(result.check_name, []))
        if self.narrator is not None and any(not r.passed for r in results):
            self._narrate([r for r in results if not r.passed], context, evaluated_at)
        if self.record and self.history is not None:
            try:
                self.history.record(results, run_id=run_id, source=self.source)
            except Exception as error:  # the verdict stands even if it cannot be stored
                log.error("could not record quality results of %s: %s", asset.asset, error)
        return results

    def _memory(self, asset: AssetQuality, as_of: datetime) -> AssetMemory | None:
        """The asset's history, read once: flagged days and recent results of every check."""
        if self.history is None:
            return None
        try:
            return self.history.memory(asset.asset, as_of.date() - MEMORY_DAYS)
        except Exception as error:  # no history: every day is judged as if it were the first
            log.warning("no quality history for %s: %s", asset.asset, error)
            return None

    def _run_rules(
        self,
        session: Any,
        asset: AssetQuality,
        rules: list[Rule],
        as_of: datetime,
        memory: AssetMemory | None,
    ) -> list[CheckResult]:
        ctx = RuleContext(
            asset=asset,
            warehouse=self.warehouse,
            session=session,
            as_of=as_of,
            schemas=self.history,
            remember_schema=self.remember_schema,
            calendar_source=lambda: load_calendar(session, self.warehouse.relation(CALENDAR_ASSET)),
            flagged=memory.flagged if memory is not None else None,
        )
        results: list[CheckResult] = []
        for rule in rules:
            try:
                results.append(evaluate_rule(ctx, rule))
            except Exception as error:
                log.warning("%s %s could not be evaluated: %s", asset.asset, rule.check_name, error)
                results.append(error_result(asset, rule, error, as_of))
        return results

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


def _recent(result: CheckResult, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The check's last results (oldest first) and this one."""
    shown = [
        {"evaluated_at": r["evaluated_at"], result.metric: r["value"], "status": r["status"]}
        for r in reversed(rows)
    ]
    return shown + [
        {"evaluated_at": result.evaluated_at, result.metric: result.value, "status": result.status}
    ]
