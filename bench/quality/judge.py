"""One evaluated day, judged the way production judges it.

After the day's raw rows landed and dbt built (its tests included), every monitored asset
is checked as of 00:05 the next morning by the platform's own engine (recording into a
private history, like the scheduled checks), the dbt tests' verdicts are added, and the
failures are grouped into incidents by the platform's own grouping over the code location's
asset graph (what the Slack sensor posts). Nothing here knows a rule's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from bench.quality.replay import TestResult
from platform_assets.quality.alerts import Topology
from platform_assets.quality.dbt_tests import rule_for_dbt_test
from platform_assets.quality.engine import QualityEngine
from platform_assets.quality.incidents import Failure, Group, Incident, IncidentBook, group_failures
from platform_assets.quality.results import CheckResult
from platform_assets.quality.specs import AssetQuality

DERIVED_CHECKS = ("column_values", "column_mix", "timestamp_bounds", "source_constraints")


def is_new_check(check_key: str) -> bool:
    """Checks this issue added: derived monitors and cross-source consistency. The others
    (hand rules and dbt tests) are what the agent had before: the same-run baseline."""
    check = check_key.split(":", 1)[1]
    return check in DERIVED_CHECKS or check.startswith("consistency_")


@dataclass
class DayOutcome:
    day: date
    failures: list[Failure] = field(default_factory=list)
    incidents: list[Group] = field(default_factory=list)  # failing that day, by root cause
    opened: list[Incident] = field(default_factory=list)  # new that day: what pages someone
    opened_before: list[Incident] = field(default_factory=list)  # same, hand rules + dbt only
    findings: dict[str, str] = field(default_factory=dict)  # check key -> description
    carried: set[str] = field(default_factory=set)  # skipped dbt tests still failed

    @property
    def failing(self) -> set[str]:
        """Checks that failed on the day (what recall counts): not a verdict carried over."""
        return {f.check_key for f in self.failures} - self.carried


class Pager:
    """The incidents that open day after day, as the Slack sensor would post them: a
    failure that lasts (a test failing until the data is fixed) stays one incident. Kept
    twice: with every check, and with the checks the agent had before (the baseline)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.books = (IncidentBook(), IncidentBook())

    def page(self, outcome: DayOutcome) -> None:
        now = datetime.combine(outcome.day, time()).timestamp()
        old = [f for f in outcome.failures if not is_new_check(f.check_key)]
        every, before = self.books
        outcome.opened = self._opened(every, outcome.incidents, now)
        outcome.opened_before = self._opened(
            before, group_failures(old, self.topology.lineage), now
        )

    @staticmethod
    def _opened(book: IncidentBook, groups: list[Group], now: float) -> list[Incident]:
        actions = book.reconcile(groups, now, reminder_after=float("inf"))
        for action in actions:
            book.delivered(action, now)
        return [a.incident for a in actions if a.kind == "open"]


def as_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0, 5))


def judge_day(
    day: date,
    engine: QualityEngine,
    assets: list[AssetQuality],
    tests: list[TestResult],
    topology: Topology,
    before: DayOutcome | None = None,
) -> DayOutcome:
    """`before`: the day before's outcome. A dbt test that dbt skipped (an upstream test
    failed with error) gives no verdict: its last one stands, as in the Slack sensor, where
    a check's state changes only with a new evaluation (a failing test skipped for a day
    must not look recovered, then open a new incident the day after)."""
    outcome = DayOutcome(day)
    for result in engine.evaluate_many(assets, as_of=as_of(day)):
        if not result.passed:
            key = f"{result.asset}:{result.check_name}"
            outcome.findings[key] = result.description
            outcome.failures.append(_rule_failure(result, key, topology))
    failed_before = {f.check_key: f for f in before.failures} if before else {}
    for test in tests:
        key = f"{test.asset}:{test.check}"
        if test.status in ("fail", "warn", "error"):
            outcome.findings[key] = f"dbt test {test.check}: {test.status}"
            outcome.failures.append(_test_failure(test, key))
        elif test.status == "skipped" and key in failed_before:
            outcome.findings[key] = f"dbt test {test.check}: skipped, still failed"
            outcome.failures.append(failed_before[key])
            outcome.carried.add(key)
    outcome.incidents = group_failures(outcome.failures, topology.lineage)
    return outcome


def _rule_failure(result: CheckResult, key: str, topology: Topology) -> Failure:
    return Failure(
        check_key=key,
        asset=result.asset,
        check=result.check_name,
        severity="ERROR" if result.severity == "error" else "WARN",
        summary=result.description[:200],
        reads=topology.reads.get(key, ()),
        rule=result.rule,
        kind=result.kind,
    )


def _test_failure(test: TestResult, key: str) -> Failure:
    rule, kind = rule_for_dbt_test(test.check)
    return Failure(
        check_key=key,
        asset=test.asset,
        check=test.check,
        severity=test.severity,
        summary=f"dbt {test.status}",
        rule=rule,
        kind=kind,
    )
