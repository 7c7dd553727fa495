"""Each quality rule on small crafted data: DuckDB warehouse file + Parquet raw lake."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
import sqlglot
from test_quality_support import AS_OF, DAY, TinyPlatform, daily_counts, event_rows

from platform_assets.quality.engine import QualityEngine
from platform_assets.quality.history import AssetMemory, DuckDBHistoryStore
from platform_assets.quality.specs import (
    AssetQuality,
    Duplicates,
    Freshness,
    NullRate,
    References,
    SchemaChange,
    Volume,
)
from platform_assets.quality.stats import rate_baseline, volume_baseline
from platform_assets.quality.warehouse import BigQueryWarehouse, DuckDBWarehouse

MIN = timedelta(minutes=1)


@pytest.fixture
def tiny(tmp_path) -> TinyPlatform:
    return TinyPlatform(tmp_path)


def run(
    tiny: TinyPlatform, asset: AssetQuality, as_of: datetime = AS_OF, history=None, **engine_kwargs
):
    engine = QualityEngine(
        DuckDBWarehouse(tiny.warehouse_path, tiny.lake, lock_timeout=1), history, **engine_kwargs
    )
    return {r.check_name: r for r in engine.evaluate(asset, as_of=as_of)}


# --- freshness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_minutes", "status", "severity"),
    [(10, "pass", "error"), (20, "warn", "warn"), (45, "fail", "error")],
)
def test_freshness_against_the_sla(tiny, age_minutes, status, severity):
    newest = AS_OF - timedelta(minutes=age_minutes)
    tiny.write_raw(
        "events",
        [
            {"message_id": "a", "source": "web", "received_at": newest - timedelta(hours=1)},
            {"message_id": "b", "source": "ios", "received_at": newest},
            {
                "message_id": "c",
                "source": "web",
                "received_at": AS_OF + timedelta(hours=1),
            },  # future
        ],
    )
    rule = Freshness(
        column="received_at", warn_after=15 * MIN, error_after=30 * MIN, explain_by="source"
    )
    result = run(tiny, AssetQuality("raw/events", freshness=rule, schema=None))["freshness"]
    assert (result.status, result.severity) == (status, severity)
    assert result.value == pytest.approx(age_minutes)
    assert (result.expected_low, result.expected_high) == (0.0, 15.0)
    if status != "pass":
        assert {row["source"] for row in result.sample} == {"web", "ios"}
        assert result.sample[0]["source"] == "web"  # the stalest source first
        assert result.kind == "late" and result.fingerprint


def test_freshness_relative_to_upstream_and_empty_table(tiny):
    tiny.write_raw("events", [{"message_id": "b", "received_at": AS_OF - 5 * MIN}])
    tiny.table("staging.stg_events", [{"message_id": "a", "received_at": AS_OF - 95 * MIN}])
    rule = Freshness(
        column="received_at", warn_after=30 * MIN, error_after=60 * MIN, relative_to="raw/events"
    )
    result = run(tiny, AssetQuality("staging/stg_events", freshness=rule, schema=None))["freshness"]
    assert result.status == "fail" and result.value == pytest.approx(90)
    assert "behind raw/events" in result.description

    tiny.sql("delete from staging.stg_events")
    empty = run(tiny, AssetQuality("staging/stg_events", freshness=rule, schema=None))
    assert empty["freshness"].status == "fail" and empty["freshness"].kind == "empty"


def delivery(source: str, message_id: str, minutes_ago: int) -> dict:
    received = AS_OF - minutes_ago * MIN
    return {
        "source": source,
        "message_id": message_id,
        "received_at": received,
        "event_date": received.date(),
    }


STAGING_FRESHNESS = Freshness(
    column="received_at",
    warn_after=30 * MIN,
    error_after=60 * MIN,
    relative_to="raw/events",
    same_rows=("source", "message_id"),
    same_rows_date="event_date",
)


@pytest.mark.parametrize(
    ("raw", "status", "lag"),
    [
        # a quiet hour and a half: nothing new anywhere, staging is not behind raw
        ([delivery("web", "a", 95)], "pass", 0),
        # a client's late retry of a message staged 95 minutes ago is the newest raw row:
        # staging holds every message raw has, it is not behind
        ([delivery("web", "a", 95), delivery("web", "a", 5)], "pass", 0),
        # a new message 40 minutes ago is missing, the retry after it is not: 55 behind
        ([delivery("web", "a", 95), delivery("ios", "b", 40), delivery("web", "a", 5)], "warn", 55),
        # the same messageId from another source is another message (Segment's ids are
        # unique per source): 90 behind
        ([delivery("web", "a", 95), delivery("ios", "a", 5)], "fail", 90),
    ],
)
def test_freshness_against_upstream_ignores_rows_already_here(tiny, raw, status, lag):
    tiny.write_raw("events", raw)
    tiny.table("staging.stg_events", [delivery("web", "a", 95)])
    asset = AssetQuality("staging/stg_events", freshness=STAGING_FRESHNESS, schema=None)
    result = run(tiny, asset)["freshness"]
    assert result.status == status
    assert result.value == pytest.approx(lag)


def test_freshness_against_upstream_finds_a_retry_on_another_day(tiny):
    # the retry's client clock moved it to the next event date: still the same message
    retry = {**delivery("web", "a", 5), "event_date": (AS_OF + timedelta(days=1)).date()}
    tiny.write_raw("events", [delivery("web", "a", 95), retry])
    tiny.table("staging.stg_events", [delivery("web", "a", 95)])
    asset = AssetQuality("staging/stg_events", freshness=STAGING_FRESHNESS, schema=None)
    assert run(tiny, asset)["freshness"].status == "pass"


# --- volume ------------------------------------------------------------------------------


def volume_asset(**overrides) -> AssetQuality:
    rule = Volume(date_column="received_at", explain_by="source", **overrides)
    return AssetQuality("raw/events", volume=rule, schema=None)


def test_volume_normal_weekday_pattern_passes(tiny):
    counts = daily_counts(base=300)
    tiny.write_raw("events", event_rows(counts))
    result = run(tiny, volume_asset())["volume_anomaly"]
    assert result.passed, result.description
    assert result.expected_low < counts[DAY] < result.expected_high
    assert result.details["weekday_seasonality"] is True
    assert len(result.recent) == 14 and result.recent[-1]["row_count"] == counts[DAY]


@pytest.mark.parametrize(("factor", "kind"), [(0.5, "drop"), (1.8, "spike"), (0.0, "drop")])
def test_volume_drop_and_spike_fail(tiny, factor, kind):
    counts = daily_counts(base=300)
    counts[DAY] = round(counts[DAY] * factor)
    rows = event_rows(counts)
    if counts[DAY]:
        rows += event_rows({DAY: 20}, source="ios")  # a small other group
    tiny.write_raw("events", rows)
    result = run(tiny, volume_asset())["volume_anomaly"]
    assert not result.passed and result.status == "warn" and result.kind == kind
    assert (
        result.value < result.expected_low
        if kind == "drop"
        else result.value > result.expected_high
    )
    assert abs(result.details["z_score"]) > 3
    if counts[DAY]:
        assert result.sample[0]["source"] == "web"  # the group that moved


def test_weekday_seasonality_catches_what_a_plain_z_score_misses(tiny):
    # Saturdays run 22% above average: a Saturday at a Monday's level is a 25% drop, which
    # a plain z-score over the last 14 days (weekday swings in its sigma) does not see
    saturday = date(2026, 11, 21)
    counts = daily_counts(base=300, end=saturday)
    counts[saturday] = round(300 * 0.92)
    tiny.write_raw("events", event_rows(counts))
    as_of = datetime(2026, 11, 22, 0, 5)
    seasonal = run(tiny, volume_asset(), as_of=as_of)["volume_anomaly"]
    naive = run(tiny, volume_asset(seasonality=None, training_days=14), as_of=as_of)[
        "volume_anomaly"
    ]
    assert not seasonal.passed and seasonal.kind == "drop", seasonal.description
    assert naive.passed, naive.description
    assert "weekday-adjusted" in seasonal.description


def test_volume_needs_minimum_training_points(tiny):
    tiny.write_raw("events", event_rows(daily_counts(days=5, base=100)))
    result = run(tiny, volume_asset())["volume_anomaly"]
    assert result.passed and result.expected_low is None
    assert "not judged" in result.description


def test_volume_baseline_statistics():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(28)]
    wobble = (1.0, 1.03, 0.98, 1.01, 0.97, 1.02, 0.99, 1.0, 0.98, 1.02)
    series = [
        (d, 1000.0 * (1.2 if d.weekday() == 5 else 1.0) * wobble[i % 10])
        for i, d in enumerate(days)
    ]
    judged = date(2026, 1, 29)
    ok = volume_baseline(
        series, judged, 1000.0, sensitivity=3, min_points=7, seasonal=True, min_relative_change=0.1
    )
    assert ok is not None and not ok.is_anomalous(1000.0) and ok.seasonal
    assert ok.is_anomalous(600.0) and ok.is_anomalous(1600.0)
    # an earlier incident in the training window is dropped, not learnt
    polluted = [(d, v * (0.2 if i == 10 else 1.0)) for i, (d, v) in enumerate(series)]
    robust = volume_baseline(
        polluted, judged, 600.0, sensitivity=3, min_points=7, seasonal=True, min_relative_change=0.1
    )
    assert robust.dropped_outliers >= 1 and robust.is_anomalous(600.0)
    assert not robust.is_anomalous(1000.0)
    assert (
        volume_baseline(
            series[:5],
            judged,
            1.0,
            sensitivity=3,
            min_points=7,
            seasonal=True,
            min_relative_change=0.1,
        )
        is None
    )
    rates = rate_baseline(
        [0.1, 0.11, 0.09, 0.1, 0.12, 0.1, 0.1], sensitivity=3, min_points=7, min_abs_change=0.05
    )
    assert rates.median == pytest.approx(0.1) and rates.upper == pytest.approx(0.15)


# --- null rate ---------------------------------------------------------------------------


def test_null_rate_burst_against_baseline(tiny):
    counts = daily_counts(days=15, base=200)
    tiny.write_raw("events", event_rows(counts, null_page_share={DAY: 0.6}))
    asset = AssetQuality(
        "raw/events",
        nulls=NullRate(columns=("page_path", "source"), date_column="received_at"),
        duplicates=Duplicates(key=("message_id",), baseline=True, date_column="received_at"),
        schema=None,
    )
    result = run(tiny, asset)["null_rate"]
    assert not result.passed and result.metric == "null_rate(page_path)"
    assert result.value == pytest.approx(0.6, abs=0.05)
    assert result.expected_high == pytest.approx(0.15, abs=0.02)  # 10% + 5 points
    assert result.kind == "nulls:page_path"
    assert result.sample and set(result.sample[0]) == {"message_id"}
    columns = {c["column"]: c for c in result.details["columns"]}
    assert columns["source"]["failed"] is False


def test_null_rate_normal_day_and_static_limit(tiny):
    tiny.write_raw("events", event_rows(daily_counts(days=15, base=200)))
    asset = AssetQuality(
        "raw/events", nulls=NullRate(columns=("page_path",), date_column="received_at"), schema=None
    )
    assert run(tiny, asset)["null_rate"].passed
    tiny.table(
        "staging.stg_products", [{"product_id": 1, "sku": "A"}, {"product_id": 2, "sku": None}]
    )
    static = AssetQuality(
        "staging/stg_products",
        nulls=NullRate(columns=("sku",)),
        duplicates=Duplicates(key=("product_id",)),
        schema=None,
    )
    result = run(tiny, static)["null_rate"]
    assert not result.passed and result.value == 0.5 and result.expected_high == 0.0
    assert result.sample == [{"product_id": 2}]


# --- duplicates --------------------------------------------------------------------------


def test_duplicate_keys_fail_with_sample(tiny):
    tiny.table(
        "mart.fct_orders",
        [
            {"order_id": 1, "total": 3},
            {"order_id": 2, "total": 4},
            {"order_id": 2, "total": 4},
            {"order_id": None, "total": 1},
            {"order_id": None, "total": 1},
        ],
    )
    asset = AssetQuality(
        "mart/fct_orders", duplicates=Duplicates(key=("order_id",), blocking=True), schema=None
    )
    result = run(tiny, asset)["duplicate_keys"]
    assert not result.passed and result.status == "fail" and result.blocking
    assert result.value == 1.0 and result.sample == [{"order_id": 2, "copies": 2}]
    tiny.sql("delete from mart.fct_orders where order_id = 2")
    assert run(tiny, asset)["duplicate_keys"].passed


def test_duplicate_burst_against_baseline_on_raw(tiny):
    counts = daily_counts(days=15, base=200)
    tiny.write_raw(
        "events", event_rows(counts, duplicate_share={**dict.fromkeys(counts, 0.01), DAY: 0.3})
    )
    asset = AssetQuality(
        "raw/events",
        duplicates=Duplicates(
            key=("message_id",), baseline=True, date_column="received_at", severity="warn"
        ),
        schema=None,
    )
    result = run(tiny, asset)["duplicate_keys"]
    assert not result.passed and result.status == "warn" and result.kind == "duplicate_burst"
    assert result.value > 0.2 and result.expected_high < 0.05
    assert result.sample[0]["copies"] == 2


def test_composite_key_duplicates(tiny):
    tiny.table(
        "staging.stg_order_items",
        [
            {"order_id": 1, "line_number": 1},
            {"order_id": 1, "line_number": 2},
            {"order_id": 1, "line_number": 2},
        ],
    )
    asset = AssetQuality(
        "staging/stg_order_items",
        duplicates=Duplicates(key=("order_id", "line_number")),
        schema=None,
    )
    result = run(tiny, asset)["duplicate_keys"]
    assert result.sample == [{"order_id": 1, "line_number": 2, "copies": 2}]


# --- schema ------------------------------------------------------------------------------


def test_schema_change_against_last_seen(tiny):
    history = DuckDBHistoryStore(tiny.root / "monitoring.duckdb")
    tiny.write_raw("events", [{"message_id": "a", "sent_at": datetime(2026, 1, 1)}])
    asset = AssetQuality("raw/events")
    first = run(tiny, asset, history=history)["schema_change"]
    assert first.passed and "baseline" in first.description
    assert run(tiny, asset, history=history)["schema_change"].passed

    # a new writer adds a column: a warning, remembered as the new baseline
    tiny.write_raw(
        "events",
        [{"message_id": "b", "sent_at": datetime(2026, 1, 2), "client_ip": "1.2.3.4"}],
        name="part-1",
    )
    added = run(tiny, asset, history=history)["schema_change"]
    assert added.status == "warn" and added.sample == [
        {"change": "added", "column": "client_ip", "type": "VARCHAR"}
    ]
    assert run(tiny, asset, history=history)["schema_change"].passed

    # a type change is critical; a read-only evaluation (CLI) reports it but does not
    # move the baseline, so the scheduled check still sees it
    tiny.write_raw(
        "events",
        [{"message_id": "c", "sent_at": "yesterday", "client_ip": "1.2.3.4"}],
        name="part-2",
    )
    peek = run(tiny, asset, history=history, record=False)["schema_change"]
    assert peek.status == "fail" and peek.sample[0]["change"] == "type_changed"
    changed = run(tiny, asset, history=history)["schema_change"]
    assert changed.status == "fail" and changed.severity == "error"
    assert changed.sample == [
        {"change": "type_changed", "column": "sent_at", "from": "TIMESTAMP", "to": "VARCHAR"}
    ]


def test_schema_removed_column_is_critical(tiny):
    history = DuckDBHistoryStore(tiny.root / "monitoring.duckdb")
    tiny.table("staging.stg_users", [{"user_id": 1, "email": "a"}])
    asset = AssetQuality("staging/stg_users")
    run(tiny, asset, history=history)
    tiny.sql("alter table staging.stg_users drop column email")
    result = run(tiny, asset, history=history)["schema_change"]
    assert result.status == "fail" and result.kind == "schema:removed:email"


# --- referential integrity ---------------------------------------------------------------


def test_orphaned_foreign_keys(tiny):
    tiny.table("staging.stg_products", [{"product_id": 1}, {"product_id": 2}])
    tiny.table(
        "staging.stg_order_items",
        [
            {"order_id": 10, "line_number": 1, "product_id": 1},
            {"order_id": 10, "line_number": 2, "product_id": 99},
            {"order_id": 11, "line_number": 1, "product_id": 99},
            {"order_id": 11, "line_number": 2, "product_id": None},
        ],
    )
    rule = References(
        column="product_id", parent="staging/stg_products", parent_column="product_id"
    )
    asset = AssetQuality("staging/stg_order_items", references=(rule,), schema=None)
    result = run(tiny, asset)["referential_integrity_product_id"]
    assert not result.passed and result.status == "fail"
    assert result.value == pytest.approx(2 / 3, abs=1e-4)
    assert result.sample == [{"product_id": 99, "rows": 2}]
    tolerant = replace(rule, max_orphan_rate=0.7, severity="warn")
    assert run(tiny, AssetQuality("staging/stg_order_items", references=(tolerant,), schema=None))[
        tolerant.check_name
    ].passed


def test_references_cast_string_ids(tiny):
    tiny.table("staging.stg_products", [{"product_id": 1}])
    tiny.table(
        "staging.stg_events",
        [{"message_id": "a", "product_id": "1"}, {"message_id": "b", "product_id": "x1"}],
    )
    rule = References(
        column="product_id",
        parent="staging/stg_products",
        parent_column="product_id",
        cast="bigint",
    )
    result = run(tiny, AssetQuality("staging/stg_events", references=(rule,), schema=None))[
        rule.check_name
    ]
    assert result.details["orphan_rows"] == 1 and result.sample[0]["rows"] == 1


# --- errors ------------------------------------------------------------------------------


def test_unreadable_table_is_an_error_result_not_an_exception(tiny):
    tiny.sql("select 1")
    asset = AssetQuality(
        "mart/missing", duplicates=Duplicates(key=("id",), blocking=True), schema=SchemaChange()
    )
    results = run(tiny, asset)
    for result in results.values():
        assert not result.passed and result.status == "error" and result.severity == "warn"
        assert result.kind == "evaluation_error" and not result.blocking


# --- BigQuery: request shapes ------------------------------------------------------------


class FakeBigQuery:
    def __init__(self, rows):
        self.rows = rows
        self.queries: list[str] = []

    def query(self, sql, location=None, job_config=None):
        self.queries.append(sql)
        rows = self.rows

        class Job:
            def result(self):
                return [type("Row", (), {"items": lambda self, r=r: r.items()})() for r in rows]

        return Job()


def test_bigquery_warehouse_sends_transpiled_sql():
    client = FakeBigQuery([{"duplicate_keys": 0, "rows_in_duplicates": 0}])
    warehouse = BigQueryWarehouse(client, "acme-prod", raw_dataset="raw", location="EU")
    engine = QualityEngine(warehouse, None)
    asset = AssetQuality("mart/fct_orders", duplicates=Duplicates(key=("order_id",)), schema=None)
    [result] = engine.evaluate(asset, as_of=AS_OF)
    assert result.passed
    [sql] = client.queries
    assert "`acme-prod`.`mart`.`fct_orders`" in sql
    sqlglot.parse_one(sql, read="bigquery")  # valid BigQuery

    client = FakeBigQuery([{"day": DAY, "value": 10}])
    warehouse = BigQueryWarehouse(client, "acme-prod")
    engine = QualityEngine(warehouse, None)
    engine.evaluate(
        AssetQuality("raw/events", volume=Volume(date_column="received_at"), schema=None),
        as_of=AS_OF,
    )
    sql = client.queries[0]
    assert "`acme-prod`.`raw`.`events`" in sql and "CAST(" in sql
    sqlglot.parse_one(sql, read="bigquery")

    client = FakeBigQuery([{"column_name": "order_id", "data_type": "INT64"}])
    columns = (
        BigQueryWarehouse(client, "acme-prod").session().__enter__().columns("staging/stg_orders")
    )
    assert columns == [("order_id", "INT64")]
    assert "INFORMATION_SCHEMA" in client.queries[0] and "'stg_orders'" in client.queries[0]
    sqlglot.parse_one(client.queries[0], read="bigquery")


def test_bigquery_staging_freshness_reads_staging_on_the_newer_rows_dates_only():
    newest = AS_OF - 5 * MIN
    client = FakeBigQuery([{"newest": newest, "low": DAY, "high": DAY}])
    engine = QualityEngine(BigQueryWarehouse(client, "acme-prod"), None)
    asset = AssetQuality("staging/stg_events", freshness=STAGING_FRESHNESS, schema=None)
    [result] = engine.evaluate(asset, as_of=AS_OF)
    assert result.passed
    here, upstream, missing = client.queries
    assert "`acme-prod`.`raw`.`events`" in upstream and "`raw`" not in here
    # the anti-join reads staging between DAY - 2 and DAY + 2, as literal dates BigQuery
    # prunes partitions with
    assert "`acme-prod`.`staging`.`stg_events`" in missing
    assert "'2026-11-18'" in missing and "'2026-11-22'" in missing
    for sql in client.queries:
        sqlglot.parse_one(sql, read="bigquery")


def test_freshness_tolerates_the_usual_quiet_hours_but_not_a_stall(tiny):
    # every night the shop is quiet from 03:00 to 04:30: a 70-minute gap at 04:10 is usual
    rows = []
    for k in range(0, 8):
        day = AS_OF.date() - timedelta(days=k)
        for minute in range(0, 24 * 60, 5):
            at = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute)
            if not (3 * 60 <= minute < 4 * 60 + 30):
                rows.append({"message_id": f"{day}-{minute}", "received_at": at})
    tiny.write_raw("events", rows)
    rule = Freshness(column="received_at", error_after=30 * MIN)
    asset = AssetQuality("raw/events", freshness=rule, schema=None)
    quiet = run(
        tiny,
        asset,
        as_of=datetime.combine(AS_OF.date(), datetime.min.time()) + timedelta(hours=4, minutes=10),
    )["freshness"]
    assert quiet.passed and quiet.value == pytest.approx(75)
    assert "usually up to 75 minutes" in quiet.description
    strict = run(
        tiny,
        AssetQuality("raw/events", freshness=replace(rule, adaptive=False), schema=None),
        as_of=datetime.combine(AS_OF.date(), datetime.min.time()) + timedelta(hours=4, minutes=10),
    )["freshness"]
    assert strict.status == "fail"
    # a stall in the busy afternoon: nothing since 14:00, at 16:00
    stalled = [
        r
        for r in rows
        if not (r["received_at"].date() == AS_OF.date() and r["received_at"].hour >= 14)
    ]
    tiny.write_raw("events", stalled)
    busy = run(
        tiny, asset, as_of=datetime.combine(AS_OF.date(), datetime.min.time()) + timedelta(hours=16)
    )["freshness"]
    assert busy.status == "fail" and busy.value == pytest.approx(125)


def test_volume_leaves_out_days_it_already_judged_anomalous(tiny):
    counts = daily_counts(base=300)
    incident = DAY - timedelta(days=7)
    counts[incident] *= 3  # last week's spike, alerted at the time
    tiny.write_raw("events", event_rows(counts))

    class Remembers:
        def last_schema(self, asset):
            return None

        def save_schema(self, asset, columns, seen_at):
            pass

        def memory(self, asset, since):
            assert asset == "raw/events" and since <= incident
            return AssetMemory(flagged={"volume_anomaly": {incident}})

        def latest_narrative(self, *args):
            return None

        def record(self, *args, **kwargs):
            return 0

    result = run(tiny, volume_asset(), history=Remembers())["volume_anomaly"]
    assert result.passed and result.details["incident_days_excluded"] == [incident]
    assert result.details["training_points"] == 27


def test_history_remembers_flagged_days(tmp_path):
    from platform_assets.quality.results import CheckResult

    store = DuckDBHistoryStore(tmp_path / "monitoring.duckdb")

    def result(day, status, check="volume_anomaly"):
        return CheckResult(
            asset="raw/events",
            check_name=check,
            rule="volume",
            passed=status == "pass",
            severity="warn",
            metric="row_count",
            value=1.0,
            expected_low=None,
            expected_high=None,
            description="",
            status=status,
            as_of=datetime.combine(day + timedelta(days=1), datetime.min.time()),
            details={"day": day},
        )

    store.record(
        [
            result(DAY - timedelta(days=3), "warn"),
            result(DAY - timedelta(days=2), "pass"),
            result(DAY - timedelta(days=40), "warn"),
            result(DAY, "error"),
            result(DAY - timedelta(days=1), "warn", check="null_rate"),
        ]
    )
    assert store.flagged_days("raw/events", "volume_anomaly", DAY - timedelta(days=28)) == {
        DAY - timedelta(days=3)
    }
    # read in one go for an evaluation: every check's flagged days and latest results
    memory = store.memory("raw/events", DAY - timedelta(days=28))
    assert memory.flagged == {
        "volume_anomaly": {DAY - timedelta(days=3)},
        "null_rate": {DAY - timedelta(days=1)},
    }
    assert {k: len(v) for k, v in memory.recent.items()} == {"volume_anomaly": 4, "null_rate": 1}
