"""The quality rules as Dagster asset checks: definitions, metadata, history rows, CLI."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from test_quality_support import AS_OF, DAY, TinyPlatform

from platform_assets.quality import checks as checks_module
from platform_assets.quality.checks import QualityResource, build_asset_checks
from platform_assets.quality.cli import main as cli
from platform_assets.quality.config import CONFIGURED
from platform_assets.quality.monitors import ASSETS
from platform_core.settings import get_settings

KEY = dg.AssetKey(["mart", "fct_orders"])


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> TinyPlatform:
    """A tiny warehouse the settings point at (DATA_DIR, DUCKDB_PATH, LAKE_DIR)."""
    platform = TinyPlatform(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DUCKDB_PATH", str(platform.warehouse_path))
    monkeypatch.setenv("LAKE_DIR", str(platform.lake))
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "LLM_PROVIDER", "PLATFORM_ENV"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield platform
    get_settings.cache_clear()


def orders(duplicate: bool = False, null_user: bool = False) -> list[dict]:
    rows = []
    for i in range(40):
        day = DAY - timedelta(days=i % 20)
        rows.append(
            {
                "order_id": i,
                "user_id": None if null_user and i == 3 else 100 + i,
                "total_amount": 10.0 + i,
                "order_date": day,
                "status": "paid",
            }
        )
    if duplicate:
        rows.append(dict(rows[0]))
    return rows


def test_quality_definitions_merge_into_the_code_location():
    from platform_assets.definitions import build_definitions

    defs = build_definitions(get_settings())  # the code location merges the quality feature
    graph = defs.resolve_asset_graph()
    ours = [
        k
        for k in graph.asset_check_keys
        if k.name in {r.check_name for a in ASSETS.values() for r in a.rules}
    ]
    assert {k.asset_key.to_user_string() for k in ours} == set(ASSETS)
    assert all(graph.has(k.asset_key) for k in ours)
    # each invariant is checked once: the dbt test owns it (blocking at ERROR), the agent
    # drops its own rule for it and explains the dbt test's failures instead
    assert graph.get_check_spec(dg.AssetCheckKey(KEY, "unique_fct_orders_order_id")).blocking
    fct_orders = {k.name for k in graph.asset_check_keys if k.asset_key == KEY}
    assert {"duplicate_keys", "null_rate"}.isdisjoint(fct_orders)
    items = dg.AssetKey(["staging", "stg_order_items"])
    assert dg.AssetCheckKey(items, "referential_integrity_product_id") not in graph.asset_check_keys
    # cross-source checks run after every asset they read
    events, products = (
        dg.AssetKey(["staging", "stg_events"]),
        dg.AssetKey(["staging", "stg_products"]),
    )
    viewed = graph.get_check_spec(dg.AssetCheckKey(events, "consistency_products_viewed_exist"))
    assert [d.asset_key for d in viewed.additional_deps] == [products]
    amounts = graph.get_check_spec(
        dg.AssetCheckKey(
            dg.AssetKey(["mart", "fct_orders"]), "consistency_order_amounts_events_vs_database"
        )
    )
    assert [d.asset_key for d in amounts.additional_deps] == [events]
    # derived monitors: every model of the manifest, without configuration
    models = {a for a in ASSETS if not a.startswith("raw/")}
    # their overrides skip values and mix (lifetime aggregates per user, per sign-up month)
    for asset in models - {"mart/mart_user_behavior", "mart/mart_cohort_ltv"}:
        names = {k.name for k in graph.get_check_keys_for_assets({dg.AssetKey(asset.split("/"))})}
        assert {"column_values", "column_mix", "timestamp_bounds"} <= names, asset
    orders = dg.AssetKey(["staging", "stg_orders"])
    assert dg.AssetCheckKey(orders, "source_constraints") in graph.asset_check_keys
    schedule = defs.resolve_schedule_def("data_quality_every_30_minutes")
    assert schedule.cron_schedule == "*/30 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def("data_quality_checks")
    assert job.executor_def.name == "in_process"
    sensor = defs.resolve_sensor_def("data_quality_slack_alerts")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert {"quality", "slack_alerts", "dbt"} <= set(defs.resources)
    # checks of dbt assets ride along in the dbt runs
    daily = {n.name for n in defs.resolve_job_def("daily_refresh").graph.nodes}
    assert {"quality_staging_stg_events", "quality_mart_fct_orders"} <= daily


def test_dagster_modules_do_not_postpone_annotations():
    for module in ("checks.py", "alerts.py", "slack.py", "lineage.py", "evaluations.py"):
        source = (Path(checks_module.__file__).parent / module).read_text()
        assert "\nfrom __future__ import annotations" not in source


def run_checks(names: list[str], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The rule machinery on fct_orders' hand configuration (duplicates, nulls, volume), which
    the code location trims to what dbt does not test."""
    defs = dg.Definitions(
        assets=[dg.AssetSpec(KEY)],
        asset_checks=build_asset_checks(CONFIGURED["mart/fct_orders"]),
        resources={
            "quality": QualityResource.from_settings(get_settings(), as_of=AS_OF.isoformat())
        },
        jobs=[
            dg.define_asset_job(
                "some_checks",
                selection=dg.AssetSelection.checks(*[dg.AssetCheckKey(KEY, n) for n in names]),
            )
        ],
    )
    return defs.resolve_job_def("some_checks").execute_in_process(
        instance=instance, raise_on_error=False
    )


def test_check_results_carry_metadata_narrative_and_a_history_row(tiny):
    tiny.table("mart.fct_orders", orders(duplicate=True))
    with dg.instance_for_test() as instance:
        result = run_checks(["duplicate_keys", "null_rate"], instance)
        assert not result.success  # the blocking check failed with ERROR severity
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"duplicate_keys", "null_rate"}  # the subset only
    dup = evaluations["duplicate_keys"]
    assert not dup.passed and dup.severity == dg.AssetCheckSeverity.ERROR
    meta = {k: getattr(v, "value", v) for k, v in dup.metadata.items()}
    assert meta["metric"] == "duplicate_keys" and meta["value"] == 1.0
    assert meta["expected_range"] == "= 0" and meta["severity"] == "CRITICAL"
    assert meta["blocking"] is True and len(meta["fingerprint"]) == 12
    assert [c.name for c in meta["sample"].schema.columns] == ["order_id", "copies"]
    assert meta["narrator"] == "deterministic narrator (no LLM)"
    assert "Likely causes:" in meta["narrative"]
    assert meta["narrative_json"]["recommended_actions"]
    recent_columns = [c.name for c in meta["recent_values"].schema.columns]
    assert recent_columns[:3] == ["evaluated_at", "duplicate_keys", "status"]
    assert evaluations["null_rate"].passed

    with duckdb.connect(str(tiny.root / "monitoring.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select check_name, passed, status, severity, metric, value, fingerprint, "
            "narrator, run_id, source, sample from data_quality_checks order by check_name"
        ).fetchall()
        trends = con.execute(
            "select asset, evaluations, failures, critical_failures from quality_trends"
        ).fetchall()
        latest = con.execute("select count(*) from quality_latest").fetchone()[0]
    assert [r[:6] for r in rows] == [
        ("duplicate_keys", False, "fail", "error", "duplicate_keys", 1.0),
        ("null_rate", True, "pass", "warn", "null_rate(user_id)", 0.0),
    ]
    assert rows[0][6] == meta["fingerprint"] and rows[0][7] == "deterministic narrator (no LLM)"
    assert rows[0][8] == result.run_id and rows[0][9] == "dagster"
    assert json.loads(rows[0][10]) == [{"order_id": 0, "copies": 2}]
    assert trends == [("mart/fct_orders", 2, 1, 1)] and latest == 2


def test_cli_exit_codes(tiny, capsys, monkeypatch):
    # the hand configuration of fct_orders, with its blocking duplicate rule
    monkeypatch.setitem(ASSETS, "mart/fct_orders", CONFIGURED["mart/fct_orders"])
    tiny.table("mart.fct_orders", orders(duplicate=True, null_user=True))
    args = ["check", "--asset", "mart/fct_orders", "--as-of", AS_OF.isoformat()]
    assert cli([*args, "--check", "duplicate_keys"]) == 1  # blocking check failed
    out = capsys.readouterr().out
    assert "FAIL" in out and "duplicate_keys" in out and "order_id=0, copies=2" in out

    assert cli([*args, "--check", "null_rate"]) == 0  # a warning only
    assert "WARN" in capsys.readouterr().out
    assert cli([*args, "--check", "null_rate", "--fail-on", "warn"]) == 1
    capsys.readouterr()

    assert cli([*args, "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert {r["check_name"] for r in results} == {
        "volume_anomaly",
        "null_rate",
        "duplicate_keys",
        "schema_change",
    }
    assert {"passed", "severity", "metric", "value", "expected", "sample", "fingerprint"} <= set(
        results[0]
    )

    assert cli(["check", "--asset", "mart/nope"]) == 2
    capsys.readouterr()
    tiny.sql("delete from mart.fct_orders where order_id = 0")
    assert cli([*args, "--check", "duplicate_keys"]) == 0
    assert _history_json(capsys) == []  # the CLI records nothing unless asked


def _history_json(capsys) -> list:
    capsys.readouterr()
    cli(["history", "--json", "--limit", "10000"])  # every row, not the 30 most recent
    return json.loads(capsys.readouterr().out)


def test_cli_record_history_and_trends(tiny, capsys):
    tiny.table("mart.fct_orders", orders())
    assert cli(["check", "--asset", "mart/*", "--as-of", AS_OF.isoformat(), "--record"]) == 0
    rows = _history_json(capsys)
    assert {r["asset"] for r in rows} == {a for a in ASSETS if a.startswith("mart/")}
    assert {r["source"] for r in rows} == {"cli"}
    capsys.readouterr()
    assert cli(["trends", "--asset", "mart/fct_orders"]) == 0
    assert "mart/fct_orders" in capsys.readouterr().out
    assert cli(["list", "--asset", "raw/events"]) == 0
    assert "freshness" in capsys.readouterr().out


def test_volume_rule_on_the_tiny_table_is_judged(tiny):
    tiny.table("mart.fct_orders", orders())
    engine = QualityResource.from_settings(
        get_settings(), as_of=AS_OF.isoformat(), record=False, narrate=False
    ).engine()
    [volume] = engine.evaluate(ASSETS["mart/fct_orders"], checks={"volume_anomaly"}, as_of=AS_OF)
    assert volume.value == 2.0 and volume.details["day"] == date(2026, 11, 20)


def test_data_and_narratives_reach_the_ui_as_text_never_as_markdown():
    """Dagster renders Markdown metadata: a sample value or narrative holding a link or an
    image would become one. Samples are tables of text cells, narratives plain text."""
    from platform_assets.quality.checks import check_metadata
    from platform_assets.quality.results import CheckResult

    hostile = "[click](https://evil.example) ![x](https://evil.example/p.png) | <b>"
    result = CheckResult(
        asset="staging/stg_events", check_name="duplicate_keys", rule="duplicates",
        passed=False, severity="warn", metric="duplicate_keys", value=1.0,
        expected_low=0, expected_high=0, description="1 duplicate key", kind="duplicates",
        status="warn", sample=[{"message_id": hostile, "copies": 2}],
        recent=[{"evaluated_at": "2026-12-05", "duplicate_keys": hostile}],
        narrative={"summary": hostile, "likely_causes": [], "evidence": [hostile],
                   "recommended_actions": [hostile]},
        narrator="deterministic narrator (no LLM)",
    )  # fmt: skip
    meta = check_metadata(result)
    assert not [k for k, v in meta.items() if isinstance(v, dg.MarkdownMetadataValue)]
    assert isinstance(meta["sample"], dg.TableMetadataValue)
    assert meta["sample"].records[0].data == {"message_id": hostile, "copies": 2}
    assert isinstance(meta["narrative"], dg.TextMetadataValue)
    assert hostile in meta["narrative"].value
