"""What every rule shares: the evaluation context, SQL literals and the result builder.

SQL is written in DuckDB's dialect and kept to what sqlglot transpiles to BigQuery faithfully
(CAST, CASE, COUNT DISTINCT, TRY_CAST, date literals). Identifiers come from the rule specs
and the table's own schema; the only literals are dates and timestamps the rules compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from platform_assets.quality.calendar import BusinessCalendar
from platform_assets.quality.results import CheckResult
from platform_assets.quality.specs import AssetQuality, Rule
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
    calendar_source: Callable[[], BusinessCalendar] = BusinessCalendar
    flagged: dict[str, set[date]] | None = None  # read ahead by the engine, per check
    _columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _calendar: BusinessCalendar | None = None

    @property
    def calendar(self) -> BusinessCalendar:
        """The declared days, read on first use (only rules that scale by it ask)."""
        if self._calendar is None:
            self._calendar = self.calendar_source()
        return self._calendar

    @property
    def day(self) -> date:
        """The day daily rules judge: the last complete UTC day before `as_of`."""
        return self.as_of.date() - timedelta(days=1)

    def rel(self, asset: str | None = None) -> str:
        return self.warehouse.relation(asset or self.asset.asset)

    def query(self, sql: str) -> list[dict[str, Any]]:
        return self.session.query(sql)

    def columns(self, asset: str | None = None) -> list[tuple[str, str]]:
        """(name, type) of an asset's columns, read once per evaluation."""
        key = asset or self.asset.asset
        if key not in self._columns:
            self._columns[key] = self.session.columns(key)
        return self._columns[key]

    def incident_days(self, check_name: str, since: date) -> set[date]:
        """Days this check already judged anomalous: incidents, not normal behaviour."""
        if self.flagged is not None:
            days = {d for d in self.flagged.get(check_name, set()) if d >= since}
        elif self.schemas is not None:
            days = self.schemas.flagged_days(self.asset.asset, check_name, since)
        else:
            return set()
        days.discard(self.day)
        return days


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
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    return datetime.fromisoformat(str(value)).replace(tzinfo=None)


def as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def build_result(
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


def not_judged(
    ctx: RuleContext,
    rule: Rule,
    *,
    rule_type: str,
    metric: str,
    value: float | None,
    description: str,
    **extra: Any,
) -> CheckResult:
    """A result that passes without a verdict (no rows, too little history): it says why."""
    return build_result(
        ctx,
        rule,
        rule_type=rule_type,
        failed=False,
        severity=rule.severity,
        metric=metric,
        value=value,
        low=None,
        high=None,
        description=description,
        **extra,
    )
