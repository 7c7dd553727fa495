"""End to end with real engines: Pub/Sub emulator -> Beam (DirectRunner, streaming, its own
process) -> raw lake -> raw sensor tick -> dbt (the runs the sensor and automation request)
-> staging and marts; dead letters with their reason; compaction keeps every row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from platform_core.contract import stamp
from platform_core.raw.codec import encode_raw_row
from platform_core.settings import PROJECT_ROOT, get_settings

pytestmark = [
    pytest.mark.slow,
    # raised inside dagster's own evaluate_automation_conditions
    pytest.mark.filterwarnings("ignore:Parameter `include_sources`"),
]

PROJECT = "local-project"
UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"
)


def track(
    anon: str,
    name: str,
    properties: dict,
    at: datetime,
    sent: datetime | None = None,
    message_id: str | None = None,
) -> dict:
    message = {
        "type": "track",
        "event": name,
        "anonymousId": anon,
        "properties": properties,
        "context": {"userAgent": UA, "campaign": {"source": "e2e"}, "page": {"path": "/shop"}},
        "originalTimestamp": at.isoformat(),
        "sentAt": (sent or at).isoformat(),
    }
    if message_id:
        message["messageId"] = message_id
    return stamp(message, sent or at)


def session(anon: str, at: datetime, order_id: str) -> list[dict]:
    product = {
        "product_id": "7",
        "sku": "SKU-7",
        "name": "Mug",
        "category": "kitchen",
        "price": 12.5,
        "quantity": 2,
        "currency": "EUR",
    }
    steps = [
        ("Product Viewed", product),
        ("Product Added", product),
        (
            "Checkout Started",
            {"order_id": order_id, "value": 25.0, "currency": "EUR", "products": [product]},
        ),
        ("Payment Info Entered", {"checkout_id": order_id, "step": 2, "payment_method": "card"}),
        (
            "Order Completed",
            {
                "order_id": order_id,
                "total": 25.0,
                "revenue": 25.0,
                "currency": "EUR",
                "products": [product],
            },
        ),
    ]
    return [
        track(anon, name, props, at + timedelta(seconds=10 * i))
        for i, (name, props) in enumerate(steps)
    ]


class Publisher:
    """Publishes the way the collector does (interfaces.md): one stamped event per message."""

    def __init__(self, topics: dict[str, str]) -> None:
        from google.cloud import pubsub_v1

        self.client = pubsub_v1.PublisherClient()
        self.topics = {k: self.client.topic_path(PROJECT, v) for k, v in topics.items()}
        self.futures = []

    def event(self, message: dict, source: str = "web") -> None:
        self.futures.append(
            self.client.publish(
                self.topics["events"],
                json.dumps(message).encode(),
                source=source,
                type=message.get("type", ""),
                event=message.get("event", ""),
                message_id=message.get("messageId", ""),
                received_at=message.get("receivedAt", ""),
            )
        )

    def raw(self, topic: str, data: bytes, **attributes: str) -> None:
        self.futures.append(self.client.publish(self.topics[topic], data, **attributes))

    def wait(self) -> None:
        for future in self.futures:
            future.result(timeout=30)
        self.futures.clear()


def lake_ids(lake: Path, table: str, column: str) -> list:
    if not list((lake / table).glob("*/*.parquet")):
        return []
    with duckdb.connect() as con:
        return [
            r[0]
            for r in con.execute(
                f"select {column} from read_parquet('{lake}/{table}/*/*.parquet')"
            ).fetchall()
        ]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture
def streaming_env(tmp_path, pubsub_emulator, dbt_manifest, monkeypatch):
    """A private lake and warehouse, unique topics/subscriptions, settings pointed at them."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "events": (f"events-{suffix}", f"events-raw-{suffix}"),
        "dead_letter": (f"events-dead-letter-{suffix}", f"events-dead-letter-raw-{suffix}"),
        "cdc": (f"cdc-{suffix}", f"cdc-raw-{suffix}"),
    }
    env = {
        "DATA_DIR": str(tmp_path),
        "LAKE_DIR": str(tmp_path / "lake"),
        "DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "PLATFORM_ENV": "local",
        "GCP_PROJECT": PROJECT,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    from streaming.beam.pubsub_admin import ensure_subscriptions

    ensure_subscriptions(PROJECT, names.values())
    yield tmp_path, names
    get_settings.cache_clear()


def start_beam(tmp_path: Path, names: dict) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "beam.log"
    args = [
        sys.executable,
        "-m",
        "streaming.beam",
        "--runner",
        "DirectRunner",
        "--create_subscriptions",
        "false",
        "--status_seconds",
        "1",
        f"--lake_dir={tmp_path / 'lake'}",
        "--flush_seconds=1",
        "--flush_rows=1000",
        f"--events_topic={names['events'][0]}",
        f"--events_subscription={names['events'][1]}",
        f"--dead_letter_topic={names['dead_letter'][0]}",
        f"--dead_letter_subscription={names['dead_letter'][1]}",
        f"--cdc_topic={names['cdc'][0]}",
        f"--cdc_subscription={names['cdc'][1]}",
    ]
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            args,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
            env=os.environ.copy(),
        )
    wait_for(
        lambda: b"running on the DirectRunner" in log.read_bytes() or process.poll() is not None,
        60,
        "the Beam job to start",
    )
    assert process.poll() is None, log.read_text()
    return process, log


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            return process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            return -9
    return process.returncode


def test_events_flow_from_pubsub_to_the_marts(streaming_env):
    from platform_assets.dbt.assets import dbt_resource
    from platform_assets.definitions import platform_assets
    from platform_assets.raw.sensors import VERIFICATION_TAG, build_raw_sensor
    from streaming.raw.compaction import compact_lake

    tmp_path, names = streaming_env
    lake = tmp_path / "lake"
    now = datetime.now(UTC).replace(microsecond=0)
    today, yesterday = now.date(), now.date() - timedelta(days=1)
    sensor = build_raw_sensor(get_settings(), minimum_interval_seconds=1, refresh_latest=True)
    defs = dg.Definitions(
        assets=platform_assets(), sensors=[sensor], resources={"dbt": dbt_resource(get_settings())}
    )
    process, log = start_beam(tmp_path, names)
    try:
        with dg.instance_for_test() as instance:
            # the sensor's first tick takes stock of the (empty) lake
            first = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
            cursor = first.cursor

            publisher = Publisher({k: v[0] for k, v in names.items()})
            sent: list[dict] = []
            start = now - timedelta(minutes=30)
            for wave in range(3):  # three waves -> several small files per partition
                for s in range(2):
                    messages = session(
                        f"anon-{wave}-{s}", start + timedelta(minutes=wave), f"order-{wave}-{s}"
                    )
                    for m in messages:
                        publisher.event(m)
                    sent += messages
                publisher.wait()
                time.sleep(1.5)
            publisher.event(sent[0])  # a redelivery: same messageId again
            late = track(
                "anon-late",
                "Product Viewed",
                {"product_id": "7"},
                datetime.combine(yesterday, datetime.min.time(), tzinfo=UTC) + timedelta(hours=20),
                sent=now,
            )  # an offline client, sent today
            publisher.event(late)
            sent.append(late)
            publisher.raw("events", b"{not json", source="web")
            bad = track("anon-bad", "Order Completed", {"total": 5}, now, message_id="bad-order")
            publisher.event(bad)
            publisher.raw(
                "dead_letter",
                b'{"type":"track"}',
                source="web",
                error="event: Field required",
                stage="collector",
                message_id="dl-1",
            )
            user = {
                "op": "c",
                "pk": '{"user_id":1}',
                "before": None,
                "after": json.dumps(
                    {
                        "user_id": 1,
                        "email": "a@example.com",
                        "full_name": "Ada",
                        "country": "DE",
                        "marketing_opt_in": True,
                        "created_at": now.isoformat(),
                        "updated_at": now.isoformat(),
                    }
                ),
                "lsn": 1000,
                "tx_id": 5,
                "source_ts": now.replace(tzinfo=None),
                "snapshot": "false",
                "kafka_topic": "shop.public.users",
                "kafka_partition": 0,
                "kafka_offset": 0,
                "ingested_at": now.replace(tzinfo=None),
                "ingest_date": today,
            }
            publisher.raw(
                "cdc", encode_raw_row("cdc_users", user), table="cdc_users", op="c", lsn="1000"
            )
            publisher.raw("cdc", b"garbage", table="cdc_users")
            publisher.wait()
            expected_ids = Counter(m["messageId"] for m in sent) + Counter([sent[0]["messageId"]])
            wait_for(
                lambda: (
                    Counter(lake_ids(lake, "events", "message_id")) == expected_ids
                    and len(lake_ids(lake, "events_dead_letter", "error")) == 4
                    and lake_ids(lake, "cdc_users", "lsn") == [1000]
                ),
                60,
                "rows in raw",
            )
            assert stop(process) == 0, log.read_text()
            output = log.read_text()
            assert "drained:" in output and "events_valid=32" in output
            assert "events_invalid=2" in output and "cdc_invalid=1" in output

            # dead letters with their reasons and Pub/Sub ids
            with duckdb.connect() as con:
                letters = con.execute(
                    f"select stage, error, message_id, pubsub_message_id from read_parquet("
                    f"'{lake}/events_dead_letter/*/*.parquet') order by error"
                ).fetchall()
            reasons = [(stage, error.split(":")[0], mid) for stage, error, mid, _ps in letters]
            assert reasons == [
                ("pipeline", "Order Completed properties.order_id", "bad-order"),
                ("pipeline", "cdc (cdc_users)", None),
                ("collector", "event", "dl-1"),
                ("pipeline", "payload is not JSON", None),
            ]
            assert all(ps for *_rest, ps in letters)

            # a sensor tick: raw materializations, and a run for yesterday's late event
            tick = sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
            )
            reported = {e.asset_key.to_user_string(): e for e in tick.asset_events}
            assert set(reported) == {"raw/events", "raw/events_dead_letter", "raw/cdc_users"}
            assert reported["raw/events"].metadata["new_rows"].value == 32
            assert reported["raw/events"].metadata["late_event_days"].value == [str(yesterday)]
            for event in tick.asset_events:  # what the sensor daemon stores
                instance.report_runless_asset_event(event)
            # the sensor's run requests, one after the other, until it asks for nothing:
            # yesterday's late day, then today's partition with the whole tables downstream
            requested: list[tuple[str | None, frozenset]] = []
            verifications = 0  # checks-only runs (REFRESH_CHECKS_INTERVAL_SECONDS)
            # the models this test reads; the marts that also need tables this test never
            # builds (fct_orders, stg_products) would fail in this cold warehouse
            checked = {
                dg.AssetKey(["staging", "stg_events"]),
                dg.AssetKey(["staging", "stg_events_dead_letter"]),
                dg.AssetKey(["staging", "stg_users"]),
                dg.AssetKey(["staging", "int_sessions"]),
                dg.AssetKey(["mart", "mart_conversion_funnel"]),
            }
            for _ in range(4):
                if not tick.run_requests:
                    break
                for request in tick.run_requests:
                    if not request.asset_selection:  # the checks of what was refreshed
                        assert request.asset_check_keys and VERIFICATION_TAG in request.tags
                        verifications += 1
                        continue
                    requested.append((request.partition_key, frozenset(request.asset_selection)))
                    run = dg.materialize(
                        platform_assets(),
                        instance=instance,
                        resources=defs.resources,
                        selection=[k for k in request.asset_selection if k in checked],
                        partition_key=request.partition_key,
                        tags=request.tags,
                    )
                    assert run.success
                tick = sensor(
                    dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs)
                )
                for event in tick.asset_events:
                    instance.report_runless_asset_event(event)
            assert tick.run_requests == []
            assert verifications == 1  # after the first refresh; the next one waits 5 minutes
            assert {day for day, _keys in requested} >= {str(yesterday), str(today)}
            refreshed = frozenset().union(*(keys for _day, keys in requested))
            assert checked | {dg.AssetKey(["mart", "mart_product_performance"])} <= refreshed
        unique = {m["messageId"] for m in sent}
        with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
            staged = con.execute("select message_id, event_date from staging.stg_events").fetchall()
            funnel = con.execute(
                "select sum(sessions), sum(order_sessions) from mart.mart_conversion_funnel "
                "where traffic_source = 'e2e'"
            ).fetchone()
            dead = con.execute("select count(*) from staging.stg_events_dead_letter").fetchone()
            users = con.execute("select email from staging.stg_users").fetchall()
        assert sorted(m for m, _d in staged) == sorted(unique)  # the redelivery collapsed
        assert {d for _m, d in staged} == {today, yesterday}
        assert funnel == (7, 6)  # 6 shopping sessions that ordered + the late visitor
        assert dead == (4,)
        assert users == [("a@example.com",)]

        # compaction: same rows, same message ids; the sensor sees a rewrite, not new data
        before = Counter(lake_ids(lake, "events", "message_id"))
        files_before = len(list(lake.glob("events/*/*.parquet")))
        report = compact_lake(lake, min_age_seconds=0)
        assert report.summary()["events"]["files_in"] >= 3
        assert Counter(lake_ids(lake, "events", "message_id")) == before
        assert len(list(lake.glob("events/*/*.parquet"))) < files_before
        with dg.instance_for_test() as instance:
            after = sensor(
                dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs)
            )
        assert after.asset_events == [] and after.run_requests == []
    finally:
        stop(process)
