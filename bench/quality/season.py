"""A shop with the seasonality a real one has, on top of the synthetic shop's weekdays.

The synthetic shop (devtools/shop) already has weekday effects (Saturdays +22%, Mondays
-8%), hours of the day and a growth trend. The evaluation adds, without changing the
simulator, what a calendar brings:

- a promotion day with three times the sessions, declared in the business calendar seed
  (`dbt_project/seeds/business_calendar.csv` of the evaluation's copy of the dbt project),
  which the rules must not alert on;
- month-end and the first of the month (payday): +15% and +10% sessions, declared in the
  same calendar with their factors, as a shop lists the paydays it knows of in advance
  (undeclared, a payday's +10% on top of a Friday's noise was a volume alert now and then).

Everything else about the promotion's shoppers is as usual (devices, funnel, prices).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

from devtools.shop.load import RawLoader
from devtools.shop.simulator import ShopConfig, SyntheticShop
from streaming.raw.writer import ParquetRawWriter

PROMOTION_FACTOR = 3.0
MONTH_END_FACTOR = 1.15
PAYDAY_FACTOR = 1.10


@dataclass(frozen=True)
class Season:
    promotions: dict[date, str] = field(default_factory=dict)  # declared in the calendar

    def factor(self, day: date) -> float:
        if day in self.promotions:
            return PROMOTION_FACTOR
        if (day + timedelta(days=1)).day == 1:
            return MONTH_END_FACTOR
        if day.day == 1:
            return PAYDAY_FACTOR
        return 1.0

    def is_month_end(self, day: date) -> bool:
        return (day + timedelta(days=1)).day == 1 or day.day == 1


class SeasonalShop(SyntheticShop):
    """The synthetic shop with more sessions on the season's busy days."""

    def __init__(self, config: ShopConfig, season: Season) -> None:
        super().__init__(config)
        self.season = season

    def _simulate_day(self, day: date, index: int) -> None:
        factor = self.season.factor(day)
        if factor == 1.0:
            return super()._simulate_day(day, index)
        usual = self.config
        self.config = replace(usual, sessions_per_day=round(usual.sessions_per_day * factor))
        try:
            super()._simulate_day(day, index)
        finally:
            self.config = usual


def simulate(config: ShopConfig, season: Season, lake: Path) -> None:
    """The seasonal shop's raw data, landed the way `devtools.shop.load.load_shop` does."""
    loader = RawLoader(ParquetRawWriter(lake))
    for item in SeasonalShop(config, season).run():
        loader.add(item)
    loader.flush()


def calendar_csv(season: Season, first: date, last: date) -> str:
    """The business calendar seed of the evaluation's dbt project: the planned promotions,
    and the month-ends and paydays from `first` to `last`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["calendar_date", "event_name", "expected_traffic_factor"])
    day = first
    while day <= last:
        if day in season.promotions:
            writer.writerow([day.isoformat(), season.promotions[day], PROMOTION_FACTOR])
        elif season.is_month_end(day):
            name = "payday" if day.day == 1 else "month-end"
            writer.writerow([day.isoformat(), name, season.factor(day)])
        day += timedelta(days=1)
    return out.getvalue()
