"""Monitors are derived, not hand-listed: from the dbt manifest and the raw schemas, every model
and raw table gets them; a new dbt model is monitored after `make prepare` (dbt parse) with
no change in Python; hand configuration only overrides."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from test_quality_support import AS_OF, DAY, TinyPlatform

from platform_assets.quality.checks import build_asset_checks
from platform_assets.quality.engine import QualityEngine
from platform_assets.quality.manifest import Project
from platform_assets.quality.monitors import ASSETS, PROJECT, build_monitors
from platform_assets.quality.specs import ParentDay
from platform_assets.quality.warehouse import DuckDBWarehouse
from platform_core.raw.schema import RAW_TABLES
from platform_core.settings import DBT_PROJECT_DIR

NEW_MODEL_SQL = """
select
    refund_date,
    count(*) as refunded_orders,
    sum(total_amount) as refunded_amount
from {{ ref('fct_orders') }}
where refund_date is not null
group by refund_date
"""
NEW_MODEL_YML = """
version: 2

models:
  - name: mart_refunds_daily
    description: Refunds per day.
    columns:
      - name: refund_date
        description: The day.
        data_tests:
          - unique
          - not_null
      - name: refunded_orders
        description: Orders refunded that day.
      - name: refunded_amount
        description: Amount refunded that day.
"""


def test_every_model_and_raw_table_is_monitored_from_the_manifest():
    models = set(PROJECT.models)
    assert models and models <= set(ASSETS)
    assert "staging/business_calendar" not in ASSETS  # a seed is declared data, not monitored
    for name in RAW_TABLES:
        raw = ASSETS[f"raw/{name}"]
        # the day the data happened: events' partition (event_date), CDC's commit time
        happened = "source_ts" if name.startswith("cdc_") else RAW_TABLES[name].partition_column
        assert raw.mix.day.column == raw.timestamps.day.column == happened
        assert raw.values is None  # numeric raw columns are offsets and LSNs
    # their overrides skip values and mix (lifetime aggregates per user, per sign-up month)
    for asset in models - {"mart/mart_user_behavior", "mart/mart_cohort_ltv"}:
        assert ASSETS[asset].values and ASSETS[asset].mix and ASSETS[asset].timestamps, asset
    # a table without a date takes its order's day, through its dbt relationships test
    items = ASSETS["staging/stg_order_items"].values
    assert ParentDay("order_id", "staging/stg_orders", "order_id") in items.day.parents
    assert {"order_id", "line_number", "product_id"} <= set(items.exclude)  # keys, not values


def test_hand_configuration_only_overrides():
    orders = ASSETS["staging/stg_orders"]
    assert orders.values.where == "status <> 'cancelled'" and "status" in orders.mix.exclude
    behaviour = ASSETS["mart/mart_user_behavior"]
    assert behaviour.values is None and behaviour.mix is None and behaviour.timestamps


def test_what_changes_by_design_is_not_judged_as_a_days_data():
    """Campaign names rotate with the marketing plan (a new one each month), so no mix
    monitor reads them; a raw CDC table's mix is the mix of its changes, not its snapshot;
    client clocks are not the platform's."""
    with_campaign = {a for a, m in PROJECT.models.items() if "campaign" in m.columns}
    assert {"staging/stg_events", "staging/int_sessions"} <= with_campaign
    for asset in with_campaign:
        assert "campaign" in ASSETS[asset].mix.exclude, asset
    for name in RAW_TABLES:
        mix = ASSETS[f"raw/{name}"].mix
        assert mix.where == ("op <> 'r'" if name.startswith("cdc_") else None), name
    # client clocks as sent are years off on a few devices a day: the corrected event time
    # and the server clocks are what the bounds of raw events watch
    assert set(ASSETS["raw/events"].timestamps.exclude) == {"original_timestamp", "sent_at"}


def prepare(project: Path) -> Path:
    """What `make prepare` does to the dbt project: parse it into its manifest."""
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "parse",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target",
            "local",
            "--quiet",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return project / "target" / "manifest.json"


@pytest.mark.slow  # a full `dbt parse` of a copy of the project: 15 s idle, a minute when busy
def test_a_new_dbt_model_with_a_numeric_column_is_monitored_after_prepare(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "marts" / "mart_refunds_daily.sql").write_text(NEW_MODEL_SQL)
    (project / "models" / "marts" / "mart_refunds_daily.yml").write_text(NEW_MODEL_YML)

    monitored = build_monitors(Project.from_path(prepare(project)))  # as the code location loads
    new = monitored["mart/mart_refunds_daily"]
    checks = {
        spec.name for definition in build_asset_checks(new) for spec in definition.check_specs
    }
    assert {"column_values", "column_mix", "timestamp_bounds", "schema_change"} <= checks
    assert "refund_date" in new.values.exclude  # its unique test makes it a key

    # the table as dbt would build it: refunds every day, ten times the amount on the last
    tiny = TinyPlatform(tmp_path / "warehouse")
    tiny.root.mkdir()
    tiny.table(
        "mart.mart_refunds_daily",
        [
            {
                "refund_date": DAY - timedelta(days=n),
                "refunded_orders": 3 + n % 2,
                "refunded_amount": (150.0 + 10 * (n % 3)) * (10 if n == 0 else 1),
            }
            for n in range(30)
        ],
    )
    engine = QualityEngine(DuckDBWarehouse(tiny.warehouse_path, tiny.lake), None)
    [result] = engine.evaluate(new, checks={"column_values"}, as_of=AS_OF)
    assert set(result.details["columns"]) == {"refunded_orders", "refunded_amount"}
    assert not result.passed and result.details["failing_columns"] == ["refunded_amount"]
