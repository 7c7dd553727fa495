"""The live shop of `make dev`: the backfill, a restart that continues the same shop, and the
live feed through the real collector.

Expected values come from the simulator run on its own (same seed, same days): the database
must hold what the simulator's database holds at that moment, and raw every event it sent
before then, once.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from devtools.cdc.processes import spawn
from devtools.dev.settings import BACKFILL_SESSIONS_PER_DAY, SHOP_SEED
from devtools.dev.shop import HORIZON_DAYS, ShopFeeder, ShopState
from devtools.services import free_port, wait_for_port
from devtools.shop.simulator import Delivery, ShopConfig, Snapshot, SyntheticShop, Transaction
from devtools.sourcedb.migrate import SHOP_TABLES, migrate
from devtools.sourcedb.server import temporary_postgres
from streaming.beam.pubsub_admin import ensure_subscriptions
from streaming.raw.writer import ParquetRawWriter

pytestmark = pytest.mark.slow  # PostgreSQL, and the emulator for the live feed

START = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
BACKFILL_DAYS = 2


class Clock:
    def __init__(self, now: datetime, step: timedelta = timedelta(0)) -> None:
        self.at, self.step = now, step

    def __call__(self) -> datetime:
        self.at += self.step
        return self.at


def simulator_until(moment: datetime) -> tuple[Counter, list[Delivery], list[Transaction]]:
    """The plain simulator, every day at the backfill's scale, up to `moment`: the rows per
    table it has then (snapshot + inserts - deletes), its events and its transactions."""
    first_day = START.date() - timedelta(days=BACKFILL_DAYS)
    config = ShopConfig(
        seed=SHOP_SEED,
        days=HORIZON_DAYS,
        end_date=first_day + timedelta(days=HORIZON_DAYS - 1),
        sessions_per_day=BACKFILL_SESSIONS_PER_DAY,
    )
    rows: Counter = Counter()
    deliveries, transactions = [], []
    for item in SyntheticShop(config).run():
        if item.at >= moment:
            break
        if isinstance(item, Snapshot):
            rows.update({table: len(snapshot) for table, snapshot in item.rows.items()})
        elif isinstance(item, Delivery):
            deliveries.append(item)
        else:
            transactions.append(item)
            for change in item.changes:
                rows[change.table] += {"c": 1, "d": -1}.get(change.op, 0)
    return rows, deliveries, transactions


def feeder(tmp_path: Path, dsn: str, clock: Clock, *, collector: str = "http://127.0.0.1:9"):
    return ShopFeeder(
        state_path=tmp_path / "shop.json",
        lake=tmp_path / "lake",
        dsn=dsn,
        collector_url=collector,
        sessions_per_day=BACKFILL_SESSIONS_PER_DAY,  # one scale: the plain simulator's
        backfill_days=BACKFILL_DAYS,
        live=True,
        say=lambda text: None,
        now=clock,
    )


def run_catch_up(feed: ShopFeeder, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select 1")
    feed.live = False  # catch up only
    feed._run()
    assert not feed.stats.errors, feed.stats.errors


def raw_message_ids(lake: Path) -> Counter:
    glob = ParquetRawWriter(lake).glob("events")
    with duckdb.connect() as con:
        rows = con.execute(f"select message_id from read_parquet('{glob}')").fetchall()
    return Counter(r[0] for r in rows)


@pytest.fixture
def postgres():
    with temporary_postgres() as server:
        migrate(server.dsn())
        yield server


def test_the_backfill_then_a_restart_continue_one_shop(tmp_path, postgres):
    dsn = postgres.dsn()
    first = feeder(tmp_path, dsn, Clock(START))
    run_catch_up(first, dsn)
    state = ShopState.load(tmp_path / "shop.json")
    assert state.first_day == START.date() - timedelta(days=BACKFILL_DAYS)
    assert START <= state.events_sent_until < START + timedelta(minutes=5)
    rows, sent, _ = simulator_until(START)
    expected_ids = Counter(d.payload["messageId"] for d in sent)
    assert raw_message_ids(tmp_path / "lake") == expected_ids  # every event, once each
    assert table_counts(dsn) == rows

    # two hours later: a new process regenerates the shop and applies only the gap
    later = START + timedelta(hours=2)
    again = feeder(tmp_path, dsn, Clock(later))
    assert not again.first_start
    run_catch_up(again, dsn)
    rows, sent, transactions = simulator_until(later)
    assert raw_message_ids(tmp_path / "lake") == Counter(d.payload["messageId"] for d in sent)
    assert table_counts(dsn) == rows  # no change applied twice, none missed
    with psycopg.connect(dsn) as conn:
        last = conn.execute("select last_tx_id from devtools.shop_progress").fetchone()[0]
    assert last == transactions[-1].tx_id


def table_counts(dsn: str) -> Counter:
    with psycopg.connect(dsn) as conn:
        return Counter(
            {t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in SHOP_TABLES}
        )


def test_the_live_feed_sends_each_event_to_the_collector_when_it_happens(
    tmp_path, postgres, pubsub_emulator
):
    project = "local-project"
    topic, subscription = f"events-{os.getpid()}", f"events-{os.getpid()}-check"
    ensure_subscriptions(project, [(topic, subscription)])
    port = free_port()
    collector = spawn(
        "collector",
        "collector",
        ["--port", str(port)],
        tmp_path / "logs",
        {
            "PUBSUB_EMULATOR_HOST": pubsub_emulator,
            "GCP_PROJECT": project,
            "PUBSUB_EVENTS_TOPIC": topic,
            "COLLECTOR_WRITE_KEYS": "",
            "COLLECTOR_SPOOL_DIR": str(tmp_path / "spool"),
        },
    )
    try:
        wait_for_port("127.0.0.1", port, 60, collector.process)
        clock = Clock(START, step=timedelta(seconds=20))  # 20 s of the shop per tick
        feed = feeder(tmp_path, postgres.dsn(), clock, collector=f"http://127.0.0.1:{port}")
        feed.start()
        assert feed.caught_up.wait(120)
        boundary = ShopState.load(tmp_path / "shop.json").events_sent_until  # backfill's end
        time.sleep(8)
        feed.stop()
        assert not feed.stats.errors, feed.stats.errors
        until = ShopState.load(tmp_path / "shop.json").events_sent_until
        assert until > boundary + timedelta(minutes=1)
        _, sent, _ = simulator_until(until)
        live = {d.payload["messageId"] for d in sent if d.at >= boundary}
        assert live and feed.stats.live_events == len(live)
        received = pull_message_ids(project, subscription, len(live))
        assert live <= received  # each one, through the collector to Pub/Sub
    finally:
        collector.stop(10)


def pull_message_ids(project: str, subscription: str, at_least: int) -> set[str]:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = subscriber.subscription_path(project, subscription)
    found: set[str] = set()
    deadline = time.monotonic() + 60
    try:
        while len(found) < at_least and time.monotonic() < deadline:
            response = subscriber.pull(subscription=path, max_messages=500, timeout=10)
            for message in response.received_messages:
                found.add(message.message.attributes["message_id"])
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=path, ack_ids=[m.ack_id for m in response.received_messages]
                )
    finally:
        subscriber.close()
    return found
