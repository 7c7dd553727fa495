"""The synthetic shop, live: its past backfilled once, then its events and database changes
as they happen, at DEV_EVENTS_PER_SECOND, across restarts of `make dev`.

One shop, one timeline. The simulator is deterministic given its seed, its first day and the
number of sessions of each day, so those are kept (`shop.json` in the dev data directory) and
every start regenerates the same timeline up to now, skipping what was delivered before:

- database transactions are applied exactly once: the id of the last one applied is stored in
  the shop's PostgreSQL (`devtools.shop_progress`, not published to CDC) in the same
  transaction as the change itself;
- events are delivered at least once: `events_sent_until` is saved after the collector
  answered; a crash resends a few seconds of events, which staging deduplicates by messageId.

What is due before now when `make dev` starts (the backfill on the first start, the gap after
a restart) is caught up at once: events straight into the raw lake like `make demo`'s backfill
(the collector would stamp them as received today), transactions into PostgreSQL, from where
CDC carries them. From then on each event goes to the collector over HTTP, and each
transaction into PostgreSQL, when the shop's clock says so.

Days before the first start run at the demo's scale (BACKFILL_SESSIONS_PER_DAY) so the first
start stays quick; days from the first start on run at DEV_EVENTS_PER_SECOND. A day keeps the
scale it was first simulated with. So the first night after a start with a higher rate, the
volume checks see a spike against the backfilled days, which is what they are for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import psycopg

from devtools.dev.settings import BACKFILL_SESSIONS_PER_DAY, SHOP_SEED
from devtools.shop.load import RawLoader
from devtools.shop.replay import DEMO_WRITE_KEYS, MAX_BATCH_BYTES, shifted
from devtools.shop.simulator import (
    Delivery,
    Item,
    ShopConfig,
    Snapshot,
    SyntheticShop,
    Transaction,
)
from devtools.sourcedb.driver import DriftError, ShopDriver
from platform_core.durable import replace_atomically
from streaming.raw.writer import ParquetRawWriter

log = logging.getLogger(__name__)

HORIZON_DAYS = 3650  # the simulated window runs this far past the first day: "forever"
SAVE_EVERY_SECONDS = 5.0
CATCH_UP_BATCH = 500  # shop transactions per database transaction while catching up
PROGRESS_DDL = """
create schema if not exists devtools;
create table if not exists devtools.shop_progress (
    id int primary key default 1 check (id = 1),
    snapshot_loaded boolean not null default false,
    last_tx_id bigint not null default 0
);
insert into devtools.shop_progress (id) values (1) on conflict do nothing;
"""


@dataclass
class ShopState:
    """What makes the timeline reproducible, and how far its events were delivered."""

    seed: int
    first_day: date
    scales: dict[str, int] = field(default_factory=dict)  # day -> sessions of that day
    events_sent_until: datetime | None = None

    @classmethod
    def load(cls, path: Path) -> ShopState | None:
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        sent = raw.get("events_sent_until")
        return cls(
            seed=raw["seed"],
            first_day=date.fromisoformat(raw["first_day"]),
            scales={k: int(v) for k, v in raw.get("scales", {}).items()},
            events_sent_until=datetime.fromisoformat(sent) if sent else None,
        )

    def save(self, path: Path) -> None:
        text = json.dumps(
            {
                "seed": self.seed,
                "first_day": self.first_day.isoformat(),
                "scales": self.scales,
                "events_sent_until": self.events_sent_until.isoformat()
                if self.events_sent_until
                else None,
            },
            indent=1,
            sort_keys=True,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda handle: handle.write(text.encode()))


class LiveShop(SyntheticShop):
    """The simulator, each day at the number of sessions recorded for it in `scales`; a day
    seen for the first time gets `new_day_scale(day)`, recorded (and saved by `on_new_day`)
    before any of its items is handed out."""

    def __init__(
        self,
        state: ShopState,
        new_day_scale: Callable[[date], int],
        on_new_day: Callable[[], None],
    ) -> None:
        config = ShopConfig(
            seed=state.seed,
            days=HORIZON_DAYS,
            end_date=state.first_day + timedelta(days=HORIZON_DAYS - 1),
            sessions_per_day=BACKFILL_SESSIONS_PER_DAY,
        )
        super().__init__(config)
        self.timeline = state  # not `state`: the simulator's own name for its tables
        self.new_day_scale = new_day_scale
        self.on_new_day = on_new_day

    def _simulate_day(self, day: date, index: int) -> None:
        key = day.isoformat()
        if key not in self.timeline.scales:
            self.timeline.scales[key] = self.new_day_scale(day)
            self.on_new_day()
        # the simulator reads its sessions per day from its config, once per day
        self.config = replace(self.config, sessions_per_day=self.timeline.scales[key])
        super()._simulate_day(day, index)


@dataclass
class FeedStats:
    caught_up_events: int = 0
    caught_up_transactions: int = 0
    live_events: int = 0
    live_transactions: int = 0
    skipped_transactions: int = 0
    caught_up_at: float | None = None  # monotonic time the catch-up finished
    errors: list[str] = field(default_factory=list)


class ShopFeeder:
    """Runs the live shop in a thread: catch up, then feed the collector and PostgreSQL."""

    def __init__(
        self,
        *,
        state_path: Path,
        lake: Path,
        dsn: str,
        collector_url: str,
        sessions_per_day: int,
        backfill_days: int,
        live: bool,
        say: Callable[[str], None],
        go_live: threading.Event | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.state_path = state_path
        self.lake = lake
        self.dsn = dsn
        self.collector_url = collector_url.rstrip("/")
        self.live = live
        self.go_live = go_live or threading.Event()
        if go_live is None:
            self.go_live.set()
        self.say = say
        self.now = now
        self.stats = FeedStats()
        self.caught_up = threading.Event()
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        today = now().date()
        state = ShopState.load(state_path)
        self.first_start = state is None
        if state is None:
            state = ShopState(SHOP_SEED, today - timedelta(days=backfill_days))
        self.state = state

        def scale(day: date) -> int:
            # days before this start that no run of make dev simulated (the backfill, or
            # days it was stopped) stay cheap; from today on the shop runs at the live rate
            return sessions_per_day if day >= today else BACKFILL_SESSIONS_PER_DAY

        self.shop = LiveShop(state, scale, lambda: state.save(state_path))

    # --- thread ----------------------------------------------------------------------------

    def start(self) -> ShopFeeder:
        self._thread = threading.Thread(target=self._run, name="shop", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(PROGRESS_DDL)
                items = self.shop.run()
                pending = self.catch_up(conn, items)
                self.caught_up.set()
                if self.live and pending is not None:
                    self.feed(conn, items, pending)
        except Exception as error:  # reported by the supervisor, which stops everything
            log.exception("the shop stopped")
            self.stats.errors.append(f"{type(error).__name__}: {error}")
            self.caught_up.set()

    # --- catching up -------------------------------------------------------------------------

    def catch_up(self, conn: psycopg.Connection, items: Iterator[Item]) -> Item | None:
        """Everything due before now: events into raw, transactions into PostgreSQL; returns
        the first item that is not due yet."""
        started = time.monotonic()
        loaded, last_tx = conn.execute(
            "select snapshot_loaded, last_tx_id from devtools.shop_progress"
        ).fetchone()
        driver = ShopDriver(conn)
        loader = RawLoader(ParquetRawWriter(self.lake))
        sent_until = self.state.events_sent_until
        batch: list[Transaction] = []
        now = self.now()
        self.say(
            "backfilling the shop from "
            + (f"{self.state.first_day}" if self.first_start else f"{sent_until or 'its start'}")
            + f" until now ({now:%Y-%m-%d %H:%M} UTC)"
        )
        for count, item in enumerate(items):
            if self.stopping.is_set():
                return None
            if count % 5000 == 0:
                now = self.now()
            if item.at >= now:
                self._apply_all(conn, driver, batch)
                loader.flush()
                self._sent_until(item.at)  # every event before the first one not due
                self.stats.caught_up_at = time.monotonic()
                self.say(
                    f"backfill done in {time.monotonic() - started:.0f}s: "
                    f"{self.stats.caught_up_events:,} events into raw, "
                    f"{self.stats.caught_up_transactions:,} database transactions"
                )
                return item
            if isinstance(item, Snapshot):
                if not loaded:
                    with conn.transaction():
                        driver.load_snapshot(item)
                        conn.execute("update devtools.shop_progress set snapshot_loaded = true")
            elif isinstance(item, Transaction):
                if item.tx_id > last_tx:
                    batch.append(item)
                    if len(batch) >= CATCH_UP_BATCH:
                        self._apply_all(conn, driver, batch)
                        batch = []
            elif sent_until is None or item.at >= sent_until:
                loader.add(item)
                self.stats.caught_up_events += 1
        return None

    # --- live ------------------------------------------------------------------------------

    def feed(self, conn: psycopg.Connection, items: Iterator[Item], pending: Item) -> None:
        """Each second: the transactions that came due, into PostgreSQL; the events, to the
        collector in one batch per source (kept and retried while it does not answer)."""
        while not self.go_live.wait(0.5):  # the collector is not up yet
            if self.stopping.is_set():
                return
        driver = ShopDriver(conn)
        unsent: list[Delivery] = []
        last_save = time.monotonic()
        with httpx.Client(timeout=10) as client:
            while not self.stopping.is_set():
                now = self.now()
                while pending.at <= now:
                    if isinstance(pending, Delivery):
                        unsent.append(pending)
                    elif isinstance(pending, Transaction):
                        self._apply(conn, driver, pending)
                        self.stats.live_transactions += 1
                    pending = next(items)
                if unsent and self._send(client, unsent, now):
                    self.stats.live_events += len(unsent)
                    unsent = []
                # everything before `pending` was taken, and (nothing unsent) delivered
                if not unsent and time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                    self._sent_until(pending.at)
                    last_save = time.monotonic()
                self.stopping.wait(1.0)
            if not unsent:
                self._sent_until(pending.at)

    def _send(self, client: httpx.Client, deliveries: list[Delivery], now: datetime) -> bool:
        """POST the deliveries to /v1/batch, one request per source (and size); True when the
        collector took them all (bad events count as taken: they go to the dead letters)."""
        by_source: dict[str, list[bytes]] = defaultdict(list)
        for delivery in deliveries:
            by_source[delivery.source].append(orjson.dumps(shifted(delivery, now)))
        try:
            for source, messages in by_source.items():
                for batch in _batches(messages):
                    response = client.post(
                        f"{self.collector_url}/v1/batch",
                        content=b'{"batch":[' + b",".join(batch) + b"]}",
                        auth=(DEMO_WRITE_KEYS[source], ""),
                        headers={"Content-Type": "application/json"},
                    )
                    if response.status_code != 200:
                        log.warning("collector answered %s; retrying", response.status_code)
                        return False
        except httpx.TransportError as error:
            log.warning("collector unreachable (%s); retrying", error)
            return False
        return True

    def _apply_all(
        self, conn: psycopg.Connection, driver: ShopDriver, batch: list[Transaction]
    ) -> None:
        """Catching up: many of the shop's transactions in one database transaction (CDC sees
        them as one; what staging ends up with is the same), one by one if one does not fit."""
        if not batch:
            return
        try:
            with conn.transaction():
                for tx in batch:
                    driver.apply(tx)
                conn.execute(
                    "update devtools.shop_progress set last_tx_id = %s", (batch[-1].tx_id,)
                )
        except DriftError:
            for tx in batch:
                self._apply(conn, driver, tx)
        self.stats.caught_up_transactions += len(batch)

    def _apply(self, conn: psycopg.Connection, driver: ShopDriver, tx: Transaction) -> None:
        try:
            with conn.transaction():
                driver.apply(tx)
                conn.execute("update devtools.shop_progress set last_tx_id = %s", (tx.tx_id,))
        except DriftError as error:  # someone changed the database by hand: skip, say so
            self.stats.skipped_transactions += 1
            log.warning("skipped a transaction the database does not fit: %s", error)
            with conn.transaction():
                conn.execute("update devtools.shop_progress set last_tx_id = %s", (tx.tx_id,))

    def _sent_until(self, moment: datetime) -> None:
        self.state.events_sent_until = moment
        self.state.save(self.state_path)


def _batches(messages: list[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    size = 0
    for message in messages:
        if batch and size + len(message) > MAX_BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += len(message) + 1
    if batch:
        yield batch
