"""The optimizer's surfaces: `sql-optimizer optimize|audit` and the Dagster audit asset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from platform_assets.genai.sql_optimizer import dbt_render
from platform_assets.genai.sql_optimizer import definitions as optimizer_defs
from platform_assets.genai.sql_optimizer.cli import main

MODELS = {
    "stg_events", "stg_users", "stg_products", "stg_orders", "stg_order_items",
    "stg_order_status_history", "stg_events_dead_letter", "int_sessions", "int_orders",
    "int_order_lines", "fct_orders", "fct_order_lines", "fct_order_attribution",
    "mart_daily_sales", "mart_daily_sales_by_currency", "mart_conversion_funnel",
    "mart_product_performance", "mart_user_behavior", "mart_retention_cohorts",
    "mart_cohort_ltv", "mart_customers_daily", "mart_fulfilment", "mart_abandonment",
    "mart_channel_performance",
}  # fmt: skip
ANALYSES = {"funnel_analysis", "product_analytics", "user_behavior"}
JSON_KEYS = {"query", "refused", "reason", "findings", "estimated_bytes", "rewrite"}


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch, bigquery_manifest: dict[str, Any]) -> None:
    """Audits read the session's BigQuery rendering instead of compiling the project again."""
    monkeypatch.setattr(dbt_render, "load_manifest", lambda *a, **k: bigquery_manifest)
    monkeypatch.setattr(optimizer_defs, "load_manifest", lambda *a, **k: bigquery_manifest)
    from platform_assets.genai.sql_optimizer import optimizer

    monkeypatch.setattr(optimizer, "load_manifest", lambda *a, **k: bigquery_manifest)


def test_optimize_json(tmp_path: Path, shop_warehouse: Any, rendered: None, capsys: Any) -> None:
    path = tmp_path / "weekly.sql"
    path.write_text(
        "select event_name, count(*) as events\nfrom staging.stg_events\n"
        "where date_trunc(event_date, isoweek) = '2026-11-16'\ngroup by event_name\n"
    )
    assert main(["optimize", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == JSON_KEYS
    assert report["refused"] is False and report["reason"] is None
    assert [f["rule"] for f in report["findings"]] == ["non_sargable_partition_filter"]
    assert set(report["findings"][0]) == {"rule", "line", "message", "fix"}
    assert report["findings"][0]["line"] == 3
    assert set(report["rewrite"]) == {"sql", "verified", "verification", "source"}
    assert report["rewrite"]["verified"] is True and report["rewrite"]["source"] == "rule"
    before, after = report["estimated_bytes"]["before"], report["estimated_bytes"]["after"]
    assert isinstance(before, int) and isinstance(after, int) and after < before


def test_optimize_refusal_json(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(
        "sys.stdin", io.StringIO("MERGE mart.t USING mart.s ON TRUE WHEN MATCHED THEN DELETE")
    )
    assert main(["optimize", "-", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["refused"] is True and "MERGE" in report["reason"]
    assert report["findings"] == [] and report["rewrite"] is None


def test_optimize_unknown_table_exits_1(
    tmp_path: Path, shop_warehouse: Any, rendered: None, capsys: Any
) -> None:
    path = tmp_path / "q.sql"
    path.write_text("select * from mart.orders_v2")
    assert main(["optimize", str(path)]) == 1
    assert "unknown table `mart.orders_v2`" in capsys.readouterr().out


def test_audit_covers_every_model_and_analysis(
    shop_warehouse: Any, rendered: None, capsys: Any
) -> None:
    assert main(["audit", "--json"]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = {r["query"].split()[1] for r in reports}
    assert names == MODELS | ANALYSES
    assert all(set(r) == JSON_KEYS and not r["refused"] and r["reason"] is None for r in reports)
    by_name = {r["query"].split()[1]: r for r in reports}
    # the analysis cross-joins a grand total it could take from the groups: a verified fix
    user_behavior = by_name["user_behavior"]
    assert user_behavior["rewrite"]["verified"] is True
    assert user_behavior["estimated_bytes"]["after"] < user_behavior["estimated_bytes"]["before"]
    # int_sessions reads stg_events once per reference to its `sessionized` CTE
    assert "repeated_scan" in {f["rule"] for f in by_name["int_sessions"]["findings"]}


def test_audit_asset_records_findings_and_savings(shop_warehouse: Any, rendered: None) -> None:
    from platform_core.settings import get_settings

    defs = optimizer_defs.build_defs(get_settings())
    asset = defs.resolve_assets_def(optimizer_defs.AUDIT_KEY)
    result = dg.materialize([asset])
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["queries"].value == len(MODELS | ANALYSES)
    assert metadata["verified_rewrites"].value >= 1
    assert metadata["estimated_bytes_saved"].value > 0
    assert metadata["findings_per_rule"].value["repeated_scan"] >= 1
    assert "| analysis user_behavior" in metadata["report"].value


def test_sensor_runs_the_audit_once_per_changed_project(dbt_manifest: Path) -> None:
    from platform_core.settings import get_settings

    defs = optimizer_defs.build_defs(get_settings())
    sensor = defs.resolve_sensor_def("sql_optimizer_after_prepare")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # a reader of the read snapshot: it queues behind no refresh (no warehouse tag or pool)
    assert "platform/warehouse" not in defs.resolve_job_def("sql_optimizer_audit").tags
    with dg.instance_for_test() as instance:
        first = sensor(dg.build_sensor_context(instance=instance, cursor=None))
        assert len(first.run_requests) == 1 and first.cursor
        again = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert isinstance(again, dg.SkipReason) and "unchanged" in (again.skip_message or "")


def test_the_code_location_carries_the_audit() -> None:
    from platform_assets.definitions import defs

    assert defs.resolve_asset_graph().has(optimizer_defs.AUDIT_KEY)
    assert defs.resolve_sensor_def("sql_optimizer_after_prepare")


class DryRunClient:
    """Stands in for google.cloud.bigquery.Client (no BigQuery here): answers dry runs with a
    fixed byte count and records the job configuration it was given."""

    def __init__(self, processed: int) -> None:
        self.processed = processed
        self.configs: list[Any] = []

    def query(self, sql: str, job_config: Any = None, location: str | None = None) -> Any:
        self.configs.append(job_config)
        return type("Job", (), {"total_bytes_processed": self.processed})()


def test_on_gcp_bytes_come_from_a_dry_run_and_nothing_is_verified_locally(
    bigquery_manifest: dict[str, Any],
) -> None:
    from platform_assets.genai.sql_optimizer.optimizer import build_optimizer
    from platform_core.settings import Settings

    client = DryRunClient(processed=123_456)
    settings = Settings(platform_env="gcp", llm_provider="deterministic")
    optimizer = build_optimizer(settings, manifest=bigquery_manifest, bigquery_client=client)
    report = optimizer.optimize(
        "select count(*) from mart.fct_orders where extract(year from order_date) = 2026", "q"
    )
    assert report.bytes_before == 123_456
    assert all(c.dry_run and not c.use_query_cache for c in client.configs)
    assert report.rewrite is not None and not report.rewrite.verified
    assert "no local warehouse" in report.rewrite.verification
