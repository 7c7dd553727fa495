"""The business calendar: days the business planned to be different (a promotion).

It is a dbt seed (`dbt_project/seeds/business_calendar.csv`: `calendar_date`, `event_name`,
`expected_traffic_factor`) that the business edits; dbt loads it into the warehouse with
every build, where the rules read it (`staging/business_calendar`). On a declared day the
rules that count or sum (volumes, column sums) expect `factor` x their usual value, within
`TOLERANCE` of it, and leave the day out of every baseline afterwards; min and max are not
judged that day (more traffic stretches extremes). Rates, means and mixes are judged as on
any day: a promotion brings more of the same shoppers, not a different kind of data.

A missing table is an empty calendar: the rules then judge every day as usual.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

log = logging.getLogger(__name__)

CALENDAR_ASSET = "staging/business_calendar"
TOLERANCE = 0.5  # a declared factor is a plan: anything within +-50% of it is as planned


@dataclass(frozen=True)
class DeclaredDay:
    day: date
    event: str
    factor: float


@dataclass(frozen=True)
class BusinessCalendar:
    days: dict[date, DeclaredDay] = field(default_factory=dict)

    def declared(self, day: date) -> DeclaredDay | None:
        return self.days.get(day)

    def factor(self, day: date) -> float:
        found = self.days.get(day)
        return found.factor if found else 1.0

    def is_declared(self, day: date) -> bool:
        return day in self.days

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> BusinessCalendar:
        days: dict[date, DeclaredDay] = {}
        for row in rows:
            day = row.get("calendar_date")
            if day is None:
                continue
            if not isinstance(day, date):
                day = date.fromisoformat(str(day)[:10])
            factor = float(row.get("expected_traffic_factor") or 1.0)
            days[day] = DeclaredDay(day, str(row.get("event_name") or "declared event"), factor)
        return cls(days)


def load_calendar(session: Any, relation: str) -> BusinessCalendar:
    """The declared days from the warehouse (empty when the seed is not loaded yet)."""
    try:
        rows = session.query(
            f"select calendar_date, event_name, expected_traffic_factor from {relation}"
        )
    except Exception as error:  # not built yet: judge every day as usual
        log.info("no business calendar (%s): every day judged as usual", error)
        return BusinessCalendar()
    return BusinessCalendar.from_rows(rows)


def scaled_range(low: float, high: float, predicted: float, factor: float) -> tuple[float, float]:
    """The expected range on a declared day: the usual range scaled by the factor, widened
    to +-TOLERANCE of the planned value."""
    planned = predicted * factor
    return min(low * factor, planned * (1 - TOLERANCE)), max(
        high * factor, planned * (1 + TOLERANCE)
    )
