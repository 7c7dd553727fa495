"""The shop the demo shows: simulated for its days up to now, and split at today's midnight
into its past (backfilled into raw and applied to PostgreSQL before the live path starts) and
today so far (sent through the live path)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as clock

from devtools.demo.console import say
from devtools.shop.simulator import Delivery, ShopConfig, Snapshot, SyntheticShop, Transaction


@dataclass(frozen=True)
class ShopTimeline:
    config: ShopConfig
    shop: SyntheticShop  # its tables: the database as it stands now
    snapshot: Snapshot
    past_events: list[Delivery]
    past_changes: list[Transaction]
    live_events: list[Delivery]
    live_changes: list[Transaction]


def shop_config(days: int, sessions_per_day: int, seed: int, now: datetime) -> ShopConfig:
    """`days` full days, and today up to `now`."""
    return ShopConfig(
        seed=seed,
        days=days + 1,
        end_date=now.date(),
        sessions_per_day=sessions_per_day,
        stop_at=now,
    )


def simulate(config: ShopConfig, now: datetime) -> ShopTimeline:
    """Run the shop (printing every tenth day) and split what happened at today's midnight."""
    midnight = datetime.combine(now.date(), clock(), tzinfo=UTC)
    shop = SyntheticShop(
        config,
        progress=lambda m: (
            say(f"      {m}")
            if "/" in m and m.split("/")[0].endswith(("0", f"{config.days}"))
            else None
        ),
    )
    items = list(shop.run())
    return ShopTimeline(
        config=config,
        shop=shop,
        snapshot=next(i for i in items if isinstance(i, Snapshot)),
        past_events=[i for i in items if isinstance(i, Delivery) and i.at < midnight],
        past_changes=[i for i in items if isinstance(i, Transaction) and i.at < midnight],
        live_events=[i for i in items if isinstance(i, Delivery) and i.at >= midnight],
        live_changes=[i for i in items if isinstance(i, Transaction) and i.at >= midnight],
    )
