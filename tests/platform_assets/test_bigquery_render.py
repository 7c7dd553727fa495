"""The BigQuery targets render valid BigQuery SQL for every model, offline.

dbt compiles for the `prod` target in-process with the BigQuery connection manager's `open`
patched to hand back an unused client, so no credentials are looked up and nothing leaves
the machine (`dbt compile` otherwise asks Google for a token even with --no-introspect).
The compiled SQL is the real BigQuery rendering: dispatched macros, dbt-bigquery's
cross-database macros and configs. sqlglot's BigQuery dialect must parse every model.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

sqlglot = pytest.importorskip("sqlglot")
pytest.importorskip("dbt.adapters.bigquery")

from dbt.adapters.bigquery.relation import BigQueryRelation  # noqa: E402
from dbt.adapters.contracts.connection import ConnectionState  # noqa: E402
from dbt.cli.main import dbtRunner  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
MODELS = {
    "stg_events", "stg_users", "stg_products", "stg_orders", "stg_order_items",
    "stg_order_status_history", "stg_events_dead_letter", "int_sessions", "fct_orders",
    "mart_daily_sales", "mart_conversion_funnel", "mart_product_performance",
    "mart_user_behavior", "mart_retention_cohorts",
}  # fmt: skip
ENV = {"GCP_PROJECT": "local-project", "BQ_RAW_DATASET": "raw", "BQ_LOCATION": "EU"}


def _offline_open(cls: Any, connection: Any) -> Any:
    connection.handle = mock.MagicMock(name="unused BigQuery client")
    connection.state = ConnectionState.OPEN
    return connection


def _existing_relation(self: Any, database: str, schema: str, identifier: str) -> Any:
    """Every relation 'exists', so incremental models render their incremental branch."""
    return BigQueryRelation.create(
        database=database, schema=schema, identifier=identifier, type=BigQueryRelation.Table
    )


@dataclass
class Compiled:
    target_path: Path
    manifest: dict[str, Any]

    def models(self) -> dict[str, dict[str, Any]]:
        return {
            node["name"]: node
            for node in self.manifest["nodes"].values()
            if node["resource_type"] == "model"
        }

    def sql(self, name: str) -> str:
        return self.models()[name]["compiled_code"]


def compile_bigquery(tmp: Path, *args: str, relations_exist: bool = False) -> Compiled:
    target_path = tmp / "target"
    patches = [
        mock.patch.dict(os.environ, ENV),
        mock.patch(
            "dbt.adapters.bigquery.connections.BigQueryConnectionManager.open",
            classmethod(_offline_open),
        ),
    ]
    if relations_exist:
        patches.append(
            mock.patch(
                "dbt.adapters.bigquery.impl.BigQueryAdapter.get_relation", _existing_relation
            )
        )
    for patch in patches:
        patch.start()
    try:
        result = dbtRunner().invoke(
            [
                "compile", "--target", "prod", "--no-introspect",
                "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
                "--target-path", str(target_path), "--log-path", str(tmp / "logs"),
                "--no-partial-parse", "--quiet", *args,
            ]
        )  # fmt: skip
    finally:
        for patch in reversed(patches):
            patch.stop()
    assert result.success, f"dbt compile failed: {result.exception}"
    manifest = json.loads((target_path / "manifest.json").read_text())
    return Compiled(target_path, manifest)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compiled]:
    yield compile_bigquery(tmp_path_factory.mktemp("bq"))


def parse_bigquery(sql: str) -> Any:
    return sqlglot.parse_one(sql, read="bigquery")


def test_every_model_renders_valid_bigquery_sql(compiled: Compiled) -> None:
    models = compiled.models()
    assert set(models) == MODELS
    for name, node in models.items():
        sql = node["compiled_code"]
        assert "{{" not in sql and "{%" not in sql, name
        parse_bigquery(sql)  # raises on anything BigQuery's grammar does not accept


def test_analyses_and_tests_render_valid_bigquery_sql(compiled: Compiled) -> None:
    nodes = [
        node
        for node in compiled.manifest["nodes"].values()
        if node["resource_type"] in ("analysis", "test")
    ]
    assert {n["name"] for n in nodes if n["resource_type"] == "analysis"} == {
        "user_behavior", "product_analytics", "funnel_analysis",
    }  # fmt: skip
    for node in nodes:
        parse_bigquery(node["compiled_code"])


def test_sources_resolve_to_the_raw_dataset(compiled: Compiled) -> None:
    sql = compiled.sql("stg_events")
    assert "`local-project`.`raw`.`events`" in sql
    assert "read_parquet" not in sql
    assert "`local-project`.`raw`.`cdc_orders`" in compiled.sql("stg_orders")


def test_bigquery_dialect_is_rendered(compiled: Compiled) -> None:
    events = compiled.sql("stg_events").lower()
    assert "json_value(properties, '$.product_id')" in events
    assert "json_query(payload, '$.properties')" in events
    assert "safe_cast(json_value(properties, '$.quantity') as int64)" in events
    assert "as float64)" in events
    users = compiled.sql("stg_users").lower()
    assert "safe_cast(json_value(after, '$.created_at') as timestamp)" in users
    assert "try_cast" not in users and "json_extract_string" not in users
    sessions = compiled.sql("int_sessions").lower()
    assert "logical_or(" in sessions and "to_hex(md5(" in sessions
    assert "generate_date_array(" in compiled.sql("mart_daily_sales").lower()
    assert "isoweek" in compiled.sql("mart_retention_cohorts").lower()
    assert "safe_divide(" in compiled.sql("mart_conversion_funnel").lower()


def test_physical_layout(compiled: Compiled) -> None:
    models = compiled.models()
    events = models["stg_events"]["config"]
    assert events["materialized"] == "incremental"
    assert events["incremental_strategy"] == "insert_overwrite"
    assert events["partition_by"] == {
        "field": "event_date",
        "data_type": "date",
        "granularity": "day",
    }
    assert events["cluster_by"] == ["event_name", "anonymous_id"]
    assert "partitioned" in models["stg_events"]["tags"]
    for name, field in {
        "mart_daily_sales": "sales_date", "mart_conversion_funnel": "session_date",
        "fct_orders": "order_date", "int_sessions": "session_date",
        "mart_retention_cohorts": "cohort_week",
    }.items():  # fmt: skip
        assert models[name]["config"]["partition_by"]["field"] == field, name
    assert {models[n]["schema"] for n in MODELS if n.startswith(("stg_", "int_"))} == {"staging"}
    assert {models[n]["schema"] for n in MODELS if n.startswith(("fct_", "mart_"))} == {"mart"}
    assert {models[n]["database"] for n in MODELS} == {"local-project"}
    assert models["stg_events_dead_letter"]["config"]["materialized"] == "table"


def test_incremental_branches_render_valid_bigquery_sql(tmp_path: Path) -> None:
    automatic = compile_bigquery(tmp_path / "auto", "-s", "stg_events", relations_exist=True)
    sql = automatic.sql("stg_events")
    parse_bigquery(sql)
    assert "max(ingested_at)" in sql and "batch_dates" in sql
    assert "`local-project`.`staging`.`stg_events`" in sql  # {{ this }}

    window = compile_bigquery(
        tmp_path / "vars", "-s", "stg_events", "--vars",
        "{min_date: '2026-11-15', max_date: '2026-11-16'}", relations_exist=True,
    )  # fmt: skip
    sql = window.sql("stg_events")
    parse_bigquery(sql)
    # literal dates, so BigQuery prunes the raw partitions
    assert re.search(
        r"where event_date between cast\('2026-11-15' as date\) and cast\('2026-11-16' as date\)",
        sql,
    )
    assert "batch_dates" not in sql
