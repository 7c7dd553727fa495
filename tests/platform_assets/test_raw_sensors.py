"""Raw sensors: new lake files / BigQuery metadata -> raw materializations; late days -> runs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import dagster as dg
import pytest

from platform_assets.raw.observers import BigQueryObserver, LakeObserver
from platform_assets.raw.sensors import (
    LATE_DAYS_TAG,
    SENSOR_NAME,
    RawCursor,
    build_raw_sensor,
    evaluate_raw_tables,
    late_days,
    next_range,
)
from platform_assets.warehouse_runs import WAREHOUSE_TAG_KEY
from platform_core.raw.rows import event_row
from platform_core.settings import get_settings
from streaming.raw.compaction import compact_partition
from streaming.raw.writer import ParquetRawWriter

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
TODAY = NOW.date()
PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC", end_offset=1)
KEYS = [dg.AssetKey(["staging", "stg_events"])]


def add_run_in_flight(
    instance: dg.DagsterInstance,
    run_id: str,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTING,
    **selection: object,
) -> None:
    """A run of the implicit asset job the sensor must see as queued or running."""
    instance.add_run(
        dg.DagsterRun(job_name="__anonymous_asset_job", run_id=run_id, status=status, **selection)
    )


def events(day: date, n: int = 3, start: int = 0) -> list[dict]:
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
    return [
        event_row(
            {
                "type": "page",
                "anonymousId": "a",
                "messageId": f"{day}-{start + i}",
                "originalTimestamp": at.isoformat(),
            },
            source="web",
            received_at=at,
            ingested_at=NOW,
        )
        for i in range(n)
    ]


CDC_USER_ROW = {
    "op": "c",
    "pk": "1",
    "before": None,
    "after": "{}",
    "lsn": 1,
    "tx_id": 1,
    "source_ts": datetime(2026, 11, 20),
    "snapshot": "false",
    "kafka_topic": "t",
    "kafka_partition": 0,
    "kafka_offset": 0,
    "ingested_at": datetime(2026, 11, 20),
    "ingest_date": date(2026, 11, 20),
}


@pytest.fixture
def lake(tmp_path):
    writer = ParquetRawWriter(tmp_path)
    writer.ensure_tables()
    return writer


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def tick(instance, observer, cursor=None, now=NOW):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return evaluate_raw_tables(
        context, observer, refresh_keys=KEYS, partitions_def=PARTITIONS, now=now
    )


def by_table(result) -> dict[str, dg.AssetMaterialization]:
    return {e.asset_key.path[-1]: e for e in result.asset_events}


# --- local lake --------------------------------------------------------------------------------


def test_new_files_are_reported_once_with_rows_and_partitions(lake, instance):
    lake.write("events", events(TODAY) + events(TODAY - timedelta(days=2), 2))
    observer = LakeObserver(lake.lake_path)
    first = tick(instance, observer)
    assert set(by_table(first)) == {"events"}
    meta = by_table(first)["events"].metadata
    assert meta["new_files"].value == 2 and meta["new_rows"].value == 5
    assert meta["partitions_touched"].value == [str(TODAY - timedelta(days=2)), str(TODAY)]
    assert "first observation" in by_table(first)["events"].description
    assert first.run_requests == []  # the first tick only takes stock

    again = tick(instance, observer, first.cursor)
    assert again.asset_events == [] and "no new raw data" in again.skip_reason.skip_message

    lake.write("events", events(TODAY, 4, start=10))
    third = tick(instance, observer, again.cursor)
    meta = by_table(third)["events"].metadata
    assert (meta["new_files"].value, meta["new_rows"].value) == (1, 4)
    assert meta["late_event_days"].value == []
    assert third.run_requests == []  # today's partition is eager()'s job


def test_the_cursor_is_plain_json_and_survives_a_restart(lake, instance):
    lake.write("cdc_users", [CDC_USER_ROW])
    first = tick(instance, LakeObserver(lake.lake_path))
    document = json.loads(first.cursor)
    assert document["v"] == 1 and document["id"].startswith("lake:")
    # a new process, a new observer object, the stored cursor: nothing is reported twice
    second = tick(instance, LakeObserver(lake.lake_path), first.cursor)
    assert second.asset_events == []
    # a cursor for another lake starts over
    other = dict(document, id="lake:/elsewhere")
    assert by_table(tick(instance, LakeObserver(lake.lake_path), json.dumps(other)))


def test_a_file_renamed_in_late_is_still_seen(lake):
    """A file whose change time is at or before the watermark but was not listed last time."""
    lake.write("events", events(TODAY))
    observer = LakeObserver(lake.lake_path, settle_seconds=30)
    ((name, changed, _path),) = observer.list_files("events")
    state = {"events": {"w": changed + 5 * 10**9, "recent": []}}
    changes, _ = observer.observe(state)
    assert changes["events"].new_files == 1
    state = {"events": {"w": changed + 5 * 10**9, "recent": [name]}}
    assert observer.observe(state)[0] == {}
    state = {"events": {"w": changed + 60 * 10**9, "recent": []}}  # settled long ago: seen
    assert observer.observe(state)[0] == {}


def test_compaction_output_is_a_rewrite_not_new_data(lake, instance):
    day = TODAY - timedelta(days=1)
    for i in range(3):
        lake.write("events", events(day, 2, start=10 * i))
    observer = LakeObserver(lake.lake_path, settle_seconds=30)
    first = tick(instance, observer)
    compact_partition(lake.lake_path / "events" / f"event_date={day}", "events", min_age_seconds=0)
    after = tick(instance, observer, first.cursor)
    assert after.asset_events == [] and after.run_requests == []
    # but new data merged before the sensor saw it is reported
    lake.write("events", events(day, 2, start=100))
    lake.write("events", events(day, 2, start=200))
    compact_partition(lake.lake_path / "events" / f"event_date={day}", "events", min_age_seconds=0)
    latest = tick(instance, observer, after.cursor)
    meta = by_table(latest)["events"].metadata
    assert meta["new_rows"].value == 10  # the merged file: 6 old + 4 unseen rows
    assert meta["late_event_days"].value == [str(day)]


# --- late event days ---------------------------------------------------------------------------


def test_late_days_and_ranges():
    days = [
        str(TODAY),
        "2026-11-18",
        "2026-11-17",
        "2026-11-10",
        "2025-01-01",
        "2026-12-25",
        "junk",
    ]
    late, outside = late_days(days, PARTITIONS, NOW)
    assert late == ["2026-11-10", "2026-11-17", "2026-11-18"]
    assert outside == ["2025-01-01", "2026-12-25", "junk"]
    assert next_range(late) == ("2026-11-10", "2026-11-10")
    assert next_range(["2026-11-17", "2026-11-18", "2026-11-19"]) == ("2026-11-17", "2026-11-19")
    many = [str(date(2026, 1, 1) + timedelta(days=i)) for i in range(40)]
    assert next_range(many, max_days=31) == ("2026-01-01", "2026-01-31")


def test_late_event_days_are_refreshed_one_run_at_a_time(lake, instance):
    observer = LakeObserver(lake.lake_path)
    cursor = tick(instance, observer).cursor  # empty lake: takes stock
    d1, d2, d5 = (str(TODAY - timedelta(days=n)) for n in (1, 2, 5))
    for day in (d1, d2, d5):
        lake.write("events", events(date.fromisoformat(day)))
    result = tick(instance, observer, cursor)
    assert by_table(result)["events"].metadata["late_event_days"].value == [d5, d2, d1]
    (first,) = result.run_requests  # the earliest contiguous range first
    assert first.asset_selection == KEYS and first.partition_key == d5
    assert (
        first.tags[WAREHOUSE_TAG_KEY] == "refresh" and first.tags[LATE_DAYS_TAG] == f"{d5}...{d5}"
    )
    assert RawCursor.load(result.cursor).pending_days == [d2, d1]

    # that run is launched, not yet executing: it will read what lands until it starts, so
    # nothing more is requested; new late rows for d5 queue that day again
    add_run_in_flight(instance, "r1", asset_selection=frozenset(KEYS))
    lake.write("events", events(date.fromisoformat(d5), 1, start=50))
    waiting = tick(instance, observer, result.cursor)
    assert waiting.run_requests == []
    assert RawCursor.load(waiting.cursor).pending_days == [d5, d2, d1]
    assert by_table(waiting)["events"]  # the raw materialization is still reported

    # once it executes it reads no more: the next run is requested, to queue behind it
    instance.delete_run("r1")
    add_run_in_flight(instance, "r1", dg.DagsterRunStatus.STARTED, asset_selection=frozenset(KEYS))
    again = tick(instance, observer, waiting.cursor)
    (second,) = again.run_requests
    assert second.partition_key == d5
    add_run_in_flight(instance, "r2", asset_selection=frozenset(KEYS))  # launched, not started
    assert tick(instance, observer, again.cursor).run_requests == []
    for run_id in ("r1", "r2"):
        instance.report_run_canceled(instance.get_run_by_id(run_id))  # no longer in flight
    final = tick(instance, observer, again.cursor)
    (third,) = final.run_requests
    assert third.partition_key is None
    assert third.tags["dagster/asset_partition_range_start"] == d2
    assert third.tags["dagster/asset_partition_range_end"] == d1
    assert RawCursor.load(final.cursor).pending_days == []
    assert len({r.run_key for r in (first, second, third)}) == 3
    assert tick(instance, observer, final.cursor).run_requests == []


# --- BigQuery --------------------------------------------------------------------------------


class FakeBigQuery:
    """Records calls; tables and partitions are set by the test."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.tables: dict[str, SimpleNamespace] = {}
        self.partitions: dict[str, list[dict]] = {}

    def set_table(self, name, modified, num_rows, buffer_rows=0, oldest=None):
        buffer = (
            SimpleNamespace(estimated_rows=buffer_rows, oldest_entry_time=oldest)
            if buffer_rows
            else None
        )
        self.tables[name] = SimpleNamespace(
            modified=modified, num_rows=num_rows, streaming_buffer=buffer
        )

    def get_table(self, table_id):
        self.calls.append(("get_table", table_id))
        return self.tables[table_id.rsplit(".", 1)[1]]

    def query(self, sql, job_config=None):
        params = {p.name: p.value for p in job_config.query_parameters}
        self.calls.append(("query", params["table_name"], params["since_ms"]))
        assert "`shop-prod.raw.INFORMATION_SCHEMA.PARTITIONS`" in sql
        rows = [
            r
            for r in self.partitions.get(params["table_name"], [])
            if r["last_modified_ms"] > params["since_ms"]
        ]
        return SimpleNamespace(result=lambda: rows)


def test_bigquery_metadata_drives_the_same_reports(instance):
    client = FakeBigQuery()
    t0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)
    client.set_table("events", t0, 1000)
    client.set_table("cdc_orders", t0, 50)
    observer = BigQueryObserver(client, "shop-prod", "raw", tables=["events", "cdc_orders"])
    first = tick(instance, observer)
    assert set(by_table(first)) == {"events", "cdc_orders"}
    assert by_table(first)["events"].metadata["dagster/row_count"].value == 1000
    assert ("get_table", "shop-prod.raw.events") in client.calls
    assert ("query", "events", 0) in client.calls

    # nothing changed: metadata only, no partition queries
    client.calls.clear()
    unchanged = tick(instance, observer, first.cursor)
    assert unchanged.asset_events == []
    assert [c[0] for c in client.calls] == ["get_table", "get_table"]

    # rows in the streaming buffer, and a late partition rewritten by the buffer's extraction
    client.calls.clear()
    t1 = t0 + timedelta(minutes=5)
    client.set_table("events", t1, 1000, buffer_rows=40, oldest=t1)
    client.partitions["events"] = [
        {
            "partition_id": "20261118",
            "total_rows": 10,
            "last_modified_ms": int(t1.timestamp() * 1e3),
        },
        {
            "partition_id": "__UNPARTITIONED__",
            "total_rows": 40,
            "last_modified_ms": int(t1.timestamp() * 1e3),
        },
    ]
    changed = tick(instance, observer, unchanged.cursor)
    meta = by_table(changed)["events"].metadata
    assert meta["streaming_buffer_rows"].value == 40 and meta["new_rows"].value == 40
    assert meta["partitions_touched"].value == ["2026-11-18"]
    (request,) = changed.run_requests
    assert request.partition_key == "2026-11-18"
    assert ("query", "events", 0) in client.calls  # since the last partition change seen
    assert set(by_table(changed)) == {"events"}
    state = RawCursor.load(changed.cursor).tables["events"]
    assert state["partitions_ms"] == int(t1.timestamp() * 1e3)


# --- the sensor definition -------------------------------------------------------------------


def test_the_sensor_definition_targets_the_partitioned_dbt_models(dbt_manifest, lake, instance):
    from platform_assets.dbt.assets import dbt_event_models, dbt_resource

    sensor = build_raw_sensor(
        get_settings(), observer_factory=lambda _s: LakeObserver(lake.lake_path)
    )
    assert sensor.name == SENSOR_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    defs = dg.Definitions(
        assets=[dbt_event_models], sensors=[sensor], resources={"dbt": dbt_resource(get_settings())}
    )
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    day = datetime.now(UTC).date() - timedelta(days=3)
    lake.write("events", events(day))
    first = sensor(context)
    assert by_table(first) and first.run_requests == []
    lake.write("events", events(day, 2, start=9))
    context = dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs)
    second = sensor(context)
    (request,) = second.run_requests
    assert set(request.asset_selection) == set(dbt_event_models.keys)
    assert request.partition_key == str(day)


def test_refresh_latest_mode_requests_one_run_for_the_latest_day_and_whole_tables(
    dbt_manifest, lake, instance
):
    from platform_assets.dbt.assets import dbt_event_models, dbt_models, dbt_resource

    sensor = build_raw_sensor(
        get_settings(),
        observer_factory=lambda _s: LakeObserver(lake.lake_path),
        refresh_latest=True,
        checks_interval=timedelta(0),  # the refreshes alone (verification runs: below)
    )
    defs = dg.Definitions(
        assets=[dbt_event_models, dbt_models],
        sensors=[sensor],
        resources={"dbt": dbt_resource(get_settings())},
    )
    today = datetime.now(UTC).date()
    lake.write("events", events(today))
    # the first tick takes stock of what raw holds (a first build, make dev's, covers it)
    baseline = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    assert baseline.run_requests == [] and RawCursor.load(baseline.cursor).dirty == []
    assert by_table(baseline)
    lake.write("events", events(today, 2, start=10))
    context = dg.build_sensor_context(instance=instance, cursor=baseline.cursor, definitions=defs)
    first = sensor(context)
    (request,) = first.run_requests
    names = {k.to_user_string() for k in request.asset_selection}
    assert request.partition_key == str(today)
    assert {"staging/stg_events", "staging/int_sessions", "mart/mart_conversion_funnel"} <= names
    assert "staging/stg_users" not in names  # not downstream of raw/events
    assert request.tags[WAREHOUSE_TAG_KEY] == "refresh"

    # while it waits to start, new data only marks the day dirty; once it executes (it reads
    # no more), one more run, which queues behind it
    add_run_in_flight(instance, "r2", asset_selection=frozenset(request.asset_selection))
    lake.write("events", events(today, 2, start=20))
    context = dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs)
    waiting = sensor(context)
    assert waiting.run_requests == [] and RawCursor.load(waiting.cursor).dirty == ["events"]
    instance.delete_run("r2")
    add_run_in_flight(
        instance,
        "r2",
        dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset(request.asset_selection),
    )
    context = dg.build_sensor_context(instance=instance, cursor=waiting.cursor, definitions=defs)
    again = sensor(context)
    (request2,) = again.run_requests
    assert request2.partition_key == str(today) and request2.run_key != request.run_key
    instance.report_run_canceled(instance.get_run_by_id("r2"))

    # only a CDC table changed: its downstream whole tables, without a partition
    lake.write("cdc_users", [CDC_USER_ROW])
    context = dg.build_sensor_context(instance=instance, cursor=again.cursor, definitions=defs)
    (cdc_run,) = sensor(context).run_requests
    names = {k.to_user_string() for k in cdc_run.asset_selection}
    assert cdc_run.partition_key is None and "staging/stg_users" in names
    assert "staging/stg_events" not in names and "mart/mart_user_behavior" in names


def code_location_ticks(lake, instance, env: dict[str, str]):
    """The code location's raw sensor: its first tick, then a tick after events landed."""
    from platform_assets.definitions import build_definitions
    from platform_core.settings import Settings

    defs = build_definitions(Settings.from_env({"LAKE_DIR": str(lake.lake_path), **env}))
    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    first = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
    lake.write("events", events(datetime.now(UTC).date()))
    context = dg.build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs)
    return defs, sensor, sensor(context)


def assert_checks_of_the_refresh(checks: set, selected: set) -> None:
    """Every check of the refreshed assets but the reconciliation, which needs the source
    database and a drained stream (it has its own job)."""
    assert checks and {c.asset_key for c in checks} <= selected
    events_key = dg.AssetKey(["staging", "stg_events"])
    assert dg.AssetCheckKey(events_key, "unique_stg_events_message_id") in checks  # dbt test
    assert dg.AssetCheckKey(events_key, "volume_anomaly") in checks  # quality rule
    funnel = dg.AssetKey(["mart", "mart_conversion_funnel"])
    assert dg.AssetCheckKey(funnel, "assert_funnel_steps_monotonic") in checks  # singular test
    assert not any(c.name == "reconciles_with_source" for c in checks)


def test_with_no_checks_interval_checks_ride_along_with_every_refresh(dbt_manifest, lake, instance):
    _defs, _sensor, tick = code_location_ticks(
        lake, instance, {"REFRESH_CHECKS_INTERVAL_SECONDS": "0"}
    )
    (request,) = tick.run_requests
    assert_checks_of_the_refresh(set(request.asset_check_keys), set(request.asset_selection))
    assert RawCursor.load(tick.cursor).unverified == []


def test_refreshes_publish_first_and_one_verification_run_checks_them(dbt_manifest, lake, instance):
    """The default: refreshes carry no checks; the next tick with no refresh in flight asks
    for the checks of everything refreshed since (dbt tests and quality rules, in a run each),
    then none until the interval has passed, however many refreshes follow."""
    defs, sensor, tick = code_location_ticks(lake, instance, {})
    (refresh,) = tick.run_requests
    assert refresh.asset_check_keys == [] and refresh.partition_key is not None
    refreshed = set(refresh.asset_selection)
    assert {k.to_user_string() for k in refreshed} == set(RawCursor.load(tick.cursor).unverified)

    context = dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs)
    verify = sensor(context)
    dbt_tests, rules = verify.run_requests
    assert dbt_tests.asset_selection == [] and rules.asset_selection == []
    assert dbt_tests.partition_key is None and rules.partition_key is None  # not partitioned
    # the dbt tests open the warehouse: they queue like a refresh; the rules read the read
    # snapshot and hold nothing up
    assert dbt_tests.tags[WAREHOUSE_TAG_KEY] == "refresh" and WAREHOUSE_TAG_KEY not in rules.tags
    events_key = dg.AssetKey(["staging", "stg_events"])
    assert (
        dg.AssetCheckKey(events_key, "unique_stg_events_message_id") in dbt_tests.asset_check_keys
    )
    assert dg.AssetCheckKey(events_key, "volume_anomaly") in rules.asset_check_keys
    checks = {*dbt_tests.asset_check_keys, *rules.asset_check_keys}
    assert_checks_of_the_refresh(checks, refreshed)
    # a verification in flight does not hold back the next refresh (it queues behind it)...
    add_run_in_flight(
        instance,
        "verification",
        asset_check_selection=frozenset(dbt_tests.asset_check_keys),
        tags=dict(dbt_tests.tags),
    )
    lake.write("events", events(datetime.now(UTC).date(), 2, start=50))
    context = dg.build_sensor_context(instance=instance, cursor=verify.cursor, definitions=defs)
    again = sensor(context)
    (next_refresh,) = again.run_requests
    assert next_refresh.asset_check_keys == [] and next_refresh.asset_selection
    # ...and within the interval no second verification is asked for
    context = dg.build_sensor_context(instance=instance, cursor=again.cursor, definitions=defs)
    assert sensor(context).run_requests == []


def test_a_due_verification_is_not_put_off_by_back_to_back_refreshes(dbt_manifest, lake, instance):
    """Refreshes may queue behind one that executes, so at a steady trickle one is always in
    flight; a verification waits for none to be. Once it is due, the sensor requests no new
    refresh until the running one has finished, then both: the verification gets its turn."""
    defs, sensor, tick = code_location_ticks(lake, instance, {})
    (refresh,) = tick.run_requests  # the verification of what it refreshes is due from now on
    add_run_in_flight(
        instance,
        "running",
        dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset(refresh.asset_selection),
    )
    lake.write("events", events(datetime.now(UTC).date(), 2, start=50))
    context = dg.build_sensor_context(instance=instance, cursor=tick.cursor, definitions=defs)
    held = sensor(context)
    assert held.run_requests == []
    assert RawCursor.load(held.cursor).dirty  # the new rows wait for the next refresh

    instance.report_run_canceled(instance.get_run_by_id("running"))  # it has finished
    context = dg.build_sensor_context(instance=instance, cursor=held.cursor, definitions=defs)
    requested = sensor(context).run_requests
    keys = sorted(r.run_key for r in requested)
    assert len(keys) == 3 and keys[0].startswith("latest-event-day-"), keys
    assert keys[1].endswith("-dbt-tests") and keys[2].endswith("-rules"), keys
