"""The derived monitors and cross-source rules on small crafted tables (DuckDB warehouse file +
Parquet lake): values, mixes, timestamps, the producer's constraints, consistency between
sources, and the business calendar. Expected values are worked out by hand from the rows."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from test_quality_support import AS_OF, DAY, TinyPlatform, daily_counts, event_rows

from platform_assets.quality.dbt_tests import Invariants
from platform_assets.quality.derive import derive_monitors
from platform_assets.quality.engine import QualityEngine
from platform_assets.quality.manifest import Project
from platform_assets.quality.specs import (
    Agreement,
    AssetQuality,
    ColumnMix,
    ColumnValues,
    Constraint,
    DailyMeasure,
    DayColumn,
    ParentDay,
    SourceConstraints,
    TimestampBounds,
    Unmatched,
    Volume,
)
from platform_assets.quality.warehouse import DuckDBWarehouse

DAYS = [DAY - timedelta(days=n) for n in range(34, -1, -1)]  # 35 days up to the judged day


@pytest.fixture
def tiny(tmp_path) -> TinyPlatform:
    return TinyPlatform(tmp_path)


def run(tiny: TinyPlatform, asset: AssetQuality, as_of: datetime = AS_OF):
    engine = QualityEngine(DuckDBWarehouse(tiny.warehouse_path, tiny.lake, lock_timeout=1), None)
    return {r.check_name: r for r in engine.evaluate(asset, as_of=as_of)}


def failing_labels(result) -> set[str]:
    return {f"{row['metric']}({row['column']})" for row in result.sample}


# --- values ------------------------------------------------------------------------------


def orders(judged: list[float] | None = None) -> list[dict]:
    """20 orders a day at 80, 90, 100, 110, 120 (mean 100, sum 2,000); `judged`: the
    amounts of the judged day instead."""
    rows = []
    for day in DAYS:
        amounts = judged if (day == DAY and judged is not None) else None
        amounts = amounts or [80.0 + 10 * (i % 5) for i in range(20)]
        for amount in amounts:
            rows.append(
                {"order_id": len(rows) + 1, "order_date": day, "total_amount": amount, "items": 2}
            )
    return rows


def test_values_in_cents_fail_sum_mean_and_max(tiny):
    cents = [100 * (80.0 + 10 * (i % 5)) for i in range(20)]
    tiny.table("mart.fct_orders", orders(judged=cents))
    result = run(tiny, AssetQuality("mart/fct_orders", schema=None, values=ColumnValues()))[
        "column_values"
    ]
    assert not result.passed and result.status == "warn"
    # a higher min is not an anomaly (the cheapest order is no longer cheap): max says it
    assert failing_labels(result) == {
        "sum(total_amount)",
        "mean(total_amount)",
        "max(total_amount)",
    }
    assert result.details["day_column"] == "order_date"
    assert result.details["failing_columns"] == ["total_amount"]
    columns = result.details["columns"]
    assert set(columns) == {"total_amount", "items"}  # order_id is an id, not a value
    assert (
        columns["total_amount"]["mean"]["value"] == 10_000 and not columns["items"]["sum"]["failed"]
    )


def test_zero_amounts_fail_the_zero_rate_and_a_normal_day_passes(tiny):
    amounts = [0.0 if i < 6 else 80.0 + 10 * (i % 5) for i in range(20)]  # 30% charged nothing
    tiny.table("mart.fct_orders", orders(judged=amounts))
    asset = AssetQuality("mart/fct_orders", schema=None, values=ColumnValues())
    result = run(tiny, asset)["column_values"]
    assert "zero_rate(total_amount)" in failing_labels(result)
    assert result.details["columns"]["total_amount"]["zero_rate"]["value"] == 0.3

    tiny.table("mart.fct_orders", orders())
    normal = run(tiny, asset)["column_values"]
    assert normal.passed, normal.description
    assert "within their usual ranges" in normal.description


def test_a_count_is_judged_against_counting_noise_however_smooth_its_weeks(tiny):
    """Abandoned carts per day: 49, 50, 51 for five weeks, smoother than counting allows.
    35 on the judged day is 30% below, but a count of 50 moves by sqrt(50) = 7 by chance
    alone (35 is about 2 such sigmas off): no anomaly. 15 is (about 6 sigmas)."""

    def carts(judged: int) -> list[dict]:
        return [
            {"session_date": day, "abandoned_carts": judged if day == DAY else 49 + n % 3}
            for n, day in enumerate(DAYS)
        ]

    asset = AssetQuality("mart/mart_abandonment", schema=None, values=ColumnValues())
    tiny.table("mart.mart_abandonment", carts(35))
    quiet = run(tiny, asset)["column_values"]
    assert quiet.passed, quiet.description
    tiny.table("mart.mart_abandonment", carts(15))
    assert failing_labels(run(tiny, asset)["column_values"]) == {"sum(abandoned_carts)"}


def test_a_table_without_a_date_takes_its_parents_day(tiny):
    order_rows = orders()
    tiny.table(
        "staging.stg_orders",
        [
            {
                "order_id": r["order_id"],
                "created_at": datetime.combine(r["order_date"], datetime.min.time()),
            }
            for r in order_rows
        ],
    )
    tiny.table(
        "staging.stg_order_items",
        [
            {
                "order_id": r["order_id"],
                "line_number": 1,
                "unit_price": r["total_amount"] * (100 if r["order_date"] == DAY else 1),
            }
            for r in order_rows
        ],
    )
    rule = ColumnValues(
        day=DayColumn(parents=(ParentDay("order_id", "staging/stg_orders", "order_id"),))
    )
    result = run(tiny, AssetQuality("staging/stg_order_items", schema=None, values=rule))[
        "column_values"
    ]
    assert result.details["day_column"] == "created_at of staging/stg_orders (by order_id)"
    assert "mean(unit_price)" in failing_labels(result)
    assert "line_number" in result.details["columns"]


def test_without_any_day_values_are_not_judged(tiny):
    tiny.table("mart.mart_product_performance", [{"product_id": 1, "views": 3}])
    result = run(
        tiny, AssetQuality("mart/mart_product_performance", schema=None, values=ColumnValues())
    )["column_values"]
    assert result.passed and "not judged: no day to cut it by" in result.description


# --- mixes -------------------------------------------------------------------------------


def events(drop_on_judged_day: str | None = None, new_value: str | None = None) -> list[dict]:
    """400 events a day: Product Viewed 50%, Home 40%, Product Added 10%; web 70%, ios 30%;
    a load batch id that changes every day."""
    names = ["Product Viewed"] * 5 + ["Home"] * 4 + ["Product Added"]
    rows = []
    for day in DAYS:
        for i in range(400):
            name = names[i % 10]
            if day == DAY and name == drop_on_judged_day:
                continue
            if day == DAY and new_value and i % 5 == 0:
                name = new_value
            rows.append(
                {
                    "message_id": f"{day}-{i}",
                    "event_date": day,
                    "event_name": name,
                    "source": "web" if i % 10 < 7 else "ios",
                    "ingestion_id": f"load-{day}",
                }
            )
    return rows


def test_a_tracking_call_that_stops_moves_the_mix(tiny):
    tiny.table("staging.stg_events", events(drop_on_judged_day="Product Added"))
    result = run(tiny, AssetQuality("staging/stg_events", schema=None, mix=ColumnMix()))[
        "column_mix"
    ]
    assert not result.passed
    assert [(f["column"], f["value"], f["share"]) for f in result.sample] == [
        ("event_name", "Product Added", 0.0)
    ]
    assert result.sample[0]["expected"] == pytest.approx(0.1, abs=0.001)
    # the batch id changes every day: a label, not a dimension; ids are never a mix
    assert result.details["columns"] == ["event_name", "source"]


def test_a_new_value_shows_as_other_growing_and_a_normal_day_passes(tiny):
    tiny.table("staging.stg_events", events(new_value="Checkout Sarted"))
    result = run(tiny, AssetQuality("staging/stg_events", schema=None, mix=ColumnMix()))[
        "column_mix"
    ]
    assert ("event_name", "(other)") in {(f["column"], f["value"]) for f in result.sample}
    tiny.table("staging.stg_events", events())
    assert run(tiny, AssetQuality("staging/stg_events", schema=None, mix=ColumnMix()))[
        "column_mix"
    ].passed


def cdc_users(sign_ups_on_judged_day: int = 60) -> list[dict]:
    """A raw CDC table whose capture began 20 days ago with a snapshot of 3,000 accounts
    (op 'r'); every day since, 60 sign-ups ('c') and 40 profile edits ('u')."""
    rows = []
    start = datetime.combine(DAY - timedelta(days=20), datetime.min.time())
    for i in range(3000):
        rows.append({"op": "r", "pk": f"r{i}", "snapshot": "true", "source_ts": start})
    for n in range(21):
        day = start + timedelta(days=n)
        sign_ups = sign_ups_on_judged_day if day.date() == DAY else 60
        for i in range(sign_ups + 40):
            op = "c" if i < sign_ups else "u"
            at = day + timedelta(minutes=10 * i + 1)
            rows.append({"op": op, "pk": f"{n}-{i}", "snapshot": "false", "source_ts": at})
    return rows


def test_a_cdc_snapshot_in_the_window_is_not_the_usual_mix_of_changes(tiny):
    """The snapshot is the table as it stood when capture began, not a day of changes:
    for four weeks after it, the mix of the day's changes must not be compared with it.
    A real shift among the changes (sign-ups stop) still fails."""
    rules = derive_monitors(Project({}, Invariants.from_manifest({})), {"tables": {}}, {})
    asset = rules["raw/cdc_users"]
    tiny.write_raw("cdc_users", cdc_users())
    assert run(tiny, asset)["column_mix"].passed
    tiny.write_raw("cdc_users", cdc_users(sign_ups_on_judged_day=10))  # 10 of 50 changes
    result = run(tiny, asset)["column_mix"]
    assert not result.passed
    shares = {(f["column"], f["value"]): (f["share"], f["expected"]) for f in result.sample}
    assert shares[("op", "c")] == (0.2, pytest.approx(0.6, abs=0.001))


# --- timestamps --------------------------------------------------------------------------


def test_timestamps_from_1970_and_the_future_fail(tiny):
    rows = []
    for day in DAYS:
        for i in range(100):
            sent = datetime.combine(day, datetime.min.time()) + timedelta(minutes=10 * i)
            if day == DAY and i < 10:
                sent = datetime(1970, 1, 1)  # a clock reset on 10% of the day's rows
            rows.append({"event_date": day, "sent_at": sent})
    tiny.table("staging.stg_events", rows)
    asset = AssetQuality("staging/stg_events", schema=None, timestamps=TimestampBounds())
    result = run(tiny, asset)["timestamp_bounds"]
    assert not result.passed and result.details["failing_columns"] == ["sent_at"]
    sent_at = next(c for c in result.details["columns"] if c["column"] == "sent_at")
    assert (sent_at["rows_out_of_bounds"], sent_at["share"]) == (10, 0.1)

    tiny.sql("insert into staging.stg_events values (date '2099-01-01', timestamp '2026-11-20')")
    future = run(tiny, asset)["timestamp_bounds"]
    assert set(future.details["failing_columns"]) == {"event_date", "sent_at"}


# --- the producer's constraints ----------------------------------------------------------


def test_rows_the_source_would_refuse_fail_with_their_keys(tiny):
    rows = [
        {"order_id": i, "status": "paid", "currency": "USD", "shipping": 4.99} for i in range(1, 11)
    ]
    rows[2]["currency"] = None
    rows[3]["shipping"] = -1.0
    rows[4]["status"] = "complete"
    tiny.table("staging.stg_orders", rows)
    constraints = (
        Constraint("orders.currency not null", "not_null", ("currency",), "", "postgres:orders"),
        Constraint(
            "orders_shipping_check",
            "range",
            ("shipping",),
            '"shipping" >= 0',
            "postgres:orders",
            lower=0.0,
        ),
        Constraint(
            "orders_status_check",
            "accepted_values",
            ("status",),
            "\"status\" in ('pending', 'paid')",
            "postgres:orders",
            values=("pending", "paid"),
        ),
        Constraint("orders.paid_at not null", "not_null", ("paid_at",), "", "postgres:orders"),
    )
    rule = SourceConstraints(constraints=constraints, key=("order_id",))
    result = run(tiny, AssetQuality("staging/stg_orders", schema=None, constraints=rule))[
        "source_constraints"
    ]
    assert not result.passed and result.status == "fail" and result.value == 3
    counts = {c["constraint"]: c["violations"] for c in result.details["constraints"]}
    assert counts == {
        "orders.currency not null": 1,
        "orders_shipping_check": 1,
        "orders_status_check": 1,
    }
    assert result.details["not_applicable"] == ["orders.paid_at not null"]
    assert result.sample == [{"order_id": 3, "currency": None}]
    assert set(result.details["failing_columns"]) == {"currency", "shipping", "status"}


# --- consistency between sources ---------------------------------------------------------


def sources(events_on_judged_day: int) -> tuple[list[dict], list[dict]]:
    """20 paid orders a day in the database; events report 20, or 19 on every fifth day
    (a client lost one), and `events_on_judged_day` on the judged day."""
    event_rows_, sales = [], []
    for n, day in enumerate(DAYS):
        reported = events_on_judged_day if day == DAY else (19 if n % 5 == 0 else 20)
        for i in range(reported):
            event_rows_.append(
                {
                    "event_date": day,
                    "event_name": "Order Completed",
                    "order_id": f"{day}-{i}",
                    "order_total": 50.0,
                }
            )
        sales.append({"sales_date": day, "orders": 20, "gross_revenue": 1000.0})
    return event_rows_, sales


ORDERS_AGREE = Agreement(
    name="orders",
    left=DailyMeasure(
        "staging/stg_events",
        "event_date",
        "count(distinct order_id)",
        "event_name = 'Order Completed'",
        "events",
    ),
    right=DailyMeasure("mart/mart_daily_sales", "sales_date", "sum(orders)", label="database"),
)


@pytest.mark.parametrize(("reported", "passed"), [(20, True), (19, True), (12, False)])
def test_events_and_database_agree_within_what_clean_days_show(tiny, reported, passed):
    event_rows_, sales = sources(reported)
    tiny.table("staging.stg_events", event_rows_)
    tiny.table("mart.mart_daily_sales", sales)
    asset = AssetQuality("mart/mart_daily_sales", schema=None, consistency=(ORDERS_AGREE,))
    result = run(tiny, asset)["consistency_orders"]
    assert result.passed is passed, result.description
    assert result.value == pytest.approx(reported / 20)
    assert result.details["usual_ratio"] == 1.0  # the median of 19/20 and 20/20 days
    if not passed:
        assert result.kind == "diverge:below" and "0.600" in result.description


def test_products_viewed_that_the_database_does_not_have(tiny):
    tiny.table("staging.stg_products", [{"product_id": p} for p in range(1, 6)])
    rows = []
    for day in DAYS:
        for i in range(100):
            unknown = day == DAY and i < 30
            rows.append(
                {
                    "event_date": day,
                    "event_name": "Product Viewed",
                    "product_id": "990007" if unknown else str(1 + i % 5),
                }
            )
    tiny.table("staging.stg_events", rows)
    rule = Unmatched(
        name="viewed",
        child=DailyMeasure("staging/stg_events", "event_date", "", "event_name = 'Product Viewed'"),
        column="product_id",
        parent="staging/stg_products",
        parent_column="product_id",
        cast="bigint",
    )
    result = run(tiny, AssetQuality("staging/stg_events", schema=None, consistency=(rule,)))[
        "consistency_viewed"
    ]
    assert not result.passed and result.value == 0.3
    assert result.sample == [{"product_id": 990007, "rows": 30}]


# --- the business calendar ---------------------------------------------------------------


def volume_asset() -> AssetQuality:
    return AssetQuality("raw/events", schema=None, volume=Volume(date_column="received_at"))


def test_a_declared_promotion_does_not_alert_but_an_undeclared_one_does(tiny):
    counts = daily_counts(base=300)
    counts[DAY] *= 3
    tiny.write_raw("events", event_rows(counts))
    assert not run(tiny, volume_asset())["volume_anomaly"].passed  # undeclared: a spike

    tiny.table(
        "staging.business_calendar",
        [{"calendar_date": DAY, "event_name": "Spring sale", "expected_traffic_factor": 3.0}],
    )
    declared = run(tiny, volume_asset())["volume_anomaly"]
    assert declared.passed, declared.description
    assert declared.details["calendar_factor"] == 3.0 and "Spring sale" in declared.description


def test_a_declared_promotion_that_brings_nothing_alerts(tiny):
    tiny.write_raw("events", event_rows(daily_counts(base=300)))
    tiny.table(
        "staging.business_calendar",
        [{"calendar_date": DAY, "event_name": "Spring sale", "expected_traffic_factor": 3.0}],
    )
    result = run(tiny, volume_asset())["volume_anomaly"]
    assert not result.passed and result.kind == "drop"


def test_declared_days_leave_the_baseline(tiny):
    counts = daily_counts(base=300)
    promotion = DAY - timedelta(days=7)
    counts[promotion] *= 3
    tiny.write_raw("events", event_rows(counts))
    tiny.table(
        "staging.business_calendar",
        [{"calendar_date": promotion, "event_name": "Sale", "expected_traffic_factor": 3.0}],
    )
    result = run(tiny, volume_asset())["volume_anomaly"]
    assert result.passed and result.details["declared_days_excluded"] == [promotion]
    assert date.fromisoformat(str(result.details["day"])) == DAY


# --- BigQuery: the same SQL, transpiled ----------------------------------------------------


def test_every_statement_of_the_derived_rules_transpiles_to_bigquery(tiny):
    """The rules write DuckDB SQL once; production runs it through sqlglot on BigQuery."""
    import sqlglot

    from platform_assets.quality.warehouse import to_bigquery

    tiny.table("mart.fct_orders", orders())
    tiny.table("staging.stg_events", events())
    seen: list[str] = []
    warehouse = DuckDBWarehouse(tiny.warehouse_path, tiny.lake, lock_timeout=1)
    session_of = warehouse.session

    def recording_session():
        manager = session_of()
        session = manager.__enter__()
        query = session.query

        def record(sql: str):
            seen.append(sql)
            return query(sql)

        session.query = record
        return _Closing(manager, session)

    warehouse.session = recording_session  # type: ignore[method-assign]
    engine = QualityEngine(warehouse, None)
    for asset in (
        AssetQuality(
            "mart/fct_orders",
            schema=None,
            values=ColumnValues(),
            timestamps=TimestampBounds(),
            consistency=(ORDERS_AGREE,),
        ),
        AssetQuality("staging/stg_events", schema=None, mix=ColumnMix()),
    ):
        engine.evaluate(asset, as_of=AS_OF)
    statements = [s for s in seen if not s.startswith("describe")]
    assert any("grouping sets" in s for s in statements)
    for sql in statements:
        sqlglot.parse_one(to_bigquery(sql), read="bigquery")


class _Closing:
    def __init__(self, manager, session):
        self.manager, self.session = manager, session

    def __enter__(self):
        return self.session

    def __exit__(self, *exc):
        return self.manager.__exit__(*exc)


def test_order_amounts_that_differ_between_events_and_database(tiny):
    """Revenue compared order by order: 20 orders a day at 50; on the judged day the
    database charged 5 of them half (what the shop reported to the client stayed 50)."""
    completed, orders_rows = [], []
    for day in DAYS:
        for i in range(20):
            order_id = len(orders_rows) + 1
            charged = 25.0 if (day == DAY and i < 5) else 50.0
            completed.append(
                {
                    "event_date": day,
                    "event_name": "Order Completed",
                    "order_id": str(order_id),
                    "order_total": 50.0,
                }
            )
            orders_rows.append({"order_id": order_id, "total_amount": charged})
    tiny.table("staging.stg_events", completed)
    tiny.table("mart.fct_orders", orders_rows)
    rule = Unmatched(
        name="amounts",
        child=DailyMeasure(
            "staging/stg_events", "event_date", "", "event_name = 'Order Completed'"
        ),
        column="order_id",
        cast="bigint",
        parent="mart/fct_orders",
        parent_column="order_id",
        value="order_total",
        parent_value="total_amount",
    )
    result = run(tiny, AssetQuality("mart/fct_orders", schema=None, consistency=(rule,)))[
        "consistency_amounts"
    ]
    assert not result.passed and result.value == 0.25
    first = len(DAYS) * 20 - 19  # the first order of the judged day
    assert result.sample[0] == {
        "order_id": first,
        "order_total": 50.0,
        "mart/fct_orders.total_amount": 25.0,
    }
