"""The BigQuery targets render valid, well-typed BigQuery SQL for every model, offline.

dbt compiles for the `prod` target in-process with the BigQuery connection manager's `open`
patched to hand back an unused client, so no credentials are looked up and nothing leaves
the machine (`dbt compile` otherwise asks Google for a token even with --no-introspect).
The compiled SQL is the real BigQuery rendering: dispatched macros, dbt-bigquery's
cross-database macros and configs. sqlglot's BigQuery dialect must parse every model, and
every model, test and analysis must type-check against the raw schemas and the models'
contracts (bigquery_types.py): no TIMESTAMP/DATETIME comparison, no integer or NUMERIC
division, no cast that fails or rounds differently than on DuckDB.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

sqlglot = pytest.importorskip("sqlglot")
pytest.importorskip("dbt.adapters.bigquery")

from dbt.adapters.bigquery.relation import BigQueryRelation  # noqa: E402
from dbt.adapters.contracts.connection import ConnectionState  # noqa: E402
from dbt.cli.main import dbtRunner  # noqa: E402

from tests.platform_assets.bigquery_types import check, warehouse_schema  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
MODELS = {
    "stg_events", "stg_users", "stg_products", "stg_orders", "stg_order_items",
    "stg_order_status_history", "stg_events_dead_letter", "int_sessions", "int_orders",
    "int_order_lines", "fct_order_attribution", "fct_orders", "fct_order_lines",
    "mart_daily_sales", "mart_daily_sales_by_currency", "mart_customers_daily",
    "mart_fulfilment", "mart_conversion_funnel", "mart_abandonment",
    "mart_channel_performance", "mart_product_performance", "mart_user_behavior",
    "mart_retention_cohorts", "mart_cohort_ltv",
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


def _watermarked_columns(self: Any, relation: Any) -> list[Any]:
    """Existing relations have int_sessions's watermark column, so its changed-only branch
    renders (`relation_has_column`)."""
    from dbt.adapters.bigquery.column import BigQueryColumn

    return [BigQueryColumn("last_ingested_at", "TIMESTAMP")]


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


def invoke_offline(tmp: Path, command: str, *args: str, patches: list[Any]) -> Path:
    """`dbt <command> --target prod` with no BigQuery behind it (the connection opened
    offline, `patches` on top); returns the target path. Fails the test if dbt fails."""
    target_path = tmp / "target"
    active = [
        mock.patch.dict(os.environ, ENV),
        mock.patch(
            "dbt.adapters.bigquery.connections.BigQueryConnectionManager.open",
            classmethod(_offline_open),
        ),
        *patches,
    ]
    for patch in active:
        patch.start()
    try:
        result = dbtRunner().invoke(
            [
                command, "--target", "prod",
                "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
                "--target-path", str(target_path), "--log-path", str(tmp / "logs"),
                "--no-partial-parse", "--quiet", *args,
            ]
        )  # fmt: skip
    finally:
        for patch in reversed(active):
            patch.stop()
    assert result.success, f"dbt {command} failed: {result.exception}"
    return target_path


def compile_bigquery(tmp: Path, *args: str, relations_exist: bool = False) -> Compiled:
    patches = []
    if relations_exist:
        patches += [
            mock.patch(
                "dbt.adapters.bigquery.impl.BigQueryAdapter.get_relation", _existing_relation
            ),
            mock.patch(
                "dbt.adapters.bigquery.impl.BigQueryAdapter.get_columns_in_relation",
                _watermarked_columns,
            ),
        ]
    target_path = invoke_offline(tmp, "compile", "--no-introspect", *args, patches=patches)
    manifest = json.loads((target_path / "manifest.json").read_text())
    return Compiled(target_path, manifest)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compiled]:
    yield compile_bigquery(tmp_path_factory.mktemp("bq"))


@pytest.fixture(scope="module")
def incremental(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compiled]:
    """Every model as a run after the first renders it (incremental branches)."""
    yield compile_bigquery(tmp_path_factory.mktemp("bq-incremental"), relations_exist=True)


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
    # integers parse only when they look like one ('2.7' is null on both engines)
    assert "regexp_contains(trim(json_value(properties, '$.quantity'))" in events
    assert "safe_cast(json_value(properties, '$.price') as numeric)" in events
    assert "partition by source, message_id" in events  # messageIds are unique per source
    users = compiled.sql("stg_users").lower()
    assert "safe_cast(json_value(after, '$.created_at') as timestamp)" in users
    assert "try_cast" not in users and "json_extract_string" not in users
    sessions = compiled.sql("int_sessions").lower()
    assert "to_hex(md5(" in sessions and "unix_micros(" in sessions
    assert "timestamp_add(previous_event_at, interval 30 minute)" in sessions
    assert "generate_date_array(" in compiled.sql("mart_daily_sales").lower()
    assert "isoweek" in compiled.sql("mart_retention_cohorts").lower()
    assert "safe_divide(cast(" in compiled.sql("mart_conversion_funnel").lower()
    assert "div(" in compiled.sql("mart_daily_sales").lower()  # AOV in integer cents


def test_every_model_test_and_analysis_type_checks(
    compiled: Compiled, incremental: Compiled
) -> None:
    schema = warehouse_schema(compiled.manifest, ENV["GCP_PROJECT"], ENV["BQ_RAW_DATASET"])
    problems = []
    checked = 0
    for build in (compiled, incremental):
        for node in build.manifest["nodes"].values():
            if node["resource_type"] in ("model", "test", "analysis"):
                problems += [f"{node['name']}: {p}" for p in check(node["compiled_code"], schema)]
                checked += 1
    assert checked > 2 * len(MODELS)
    assert problems == []


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        (  # dbt.dateadd renders a DATETIME: BigQuery rejects comparing it with a TIMESTAMP
            "select 1 from `p`.`raw`.`events` as e "
            "where e.ingested_at > datetime_add(cast(e.received_at as datetime), interval -1 hour)",
            "compares DATETIME with TIMESTAMP",
        ),
        (
            "select 1 from `p`.`raw`.`events` as e where e.event_date > e.ingested_at",
            "compares DATE",
        ),
        (  # NUMERIC / INT64 is exact in BigQuery, a DOUBLE in DuckDB: AOVs round differently
            "select round(safe_divide(c.lsn * 1.5, c.kafka_offset), 2) "
            "from `p`.`raw`.`cdc_orders` as c",
            "divides",
        ),
        (
            "select c.lsn / c.kafka_offset from `p`.`raw`.`cdc_orders` as c",
            "divides INT64 by INT64",
        ),
        (  # SAFE_CAST('2.7' AS INT64) is NULL, DuckDB's TRY_CAST is 3
            "select safe_cast(c.pk as int64) from `p`.`raw`.`cdc_orders` as c",
            "SAFE_CAST of STRING to INT64",
        ),
        ("select cast(c.pk as numeric) from `p`.`raw`.`cdc_orders` as c", "CAST of STRING"),
        ("select cast(c.lsn * 0.5 as int64) from `p`.`raw`.`cdc_orders` as c", "rounds"),
    ],
)
def test_the_type_checker_catches_what_bigquery_does_differently(sql: str, problem: str) -> None:
    manifest: dict[str, Any] = {"nodes": {}}
    found = check(sql, warehouse_schema(manifest, "p", "raw"))
    assert len(found) == 1 and problem in found[0], found


def test_the_type_checker_accepts_the_portable_forms() -> None:
    schema = warehouse_schema({"nodes": {}}, "p", "raw")
    portable = [
        "select 1 from `p`.`raw`.`events` as e "
        "where e.ingested_at > timestamp_add(e.received_at, interval -60 minute)",
        "select safe_divide(cast(c.lsn as float64), cast(c.kafka_offset as float64)) "
        "from `p`.`raw`.`cdc_orders` as c",
        "select case when regexp_contains(trim(c.pk), r'^[0-9]+$') "
        "then safe_cast(trim(c.pk) as int64) end from `p`.`raw`.`cdc_orders` as c",
        "select cast(round(c.lsn * 0.5, 0) as int64), div(c.lsn, 7) "
        "from `p`.`raw`.`cdc_orders` as c",
        "select cast('2026-11-15' as date) from `p`.`raw`.`cdc_orders` as c",
    ]
    assert [check(sql, schema) for sql in portable] == [[]] * len(portable)


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
        "mart_retention_cohorts": "cohort_week", "mart_cohort_ltv": "signup_month",
        "mart_channel_performance": "activity_date", "fct_order_lines": "order_date",
    }.items():  # fmt: skip
        assert models[name]["config"]["partition_by"]["field"] == field, name
    assert {models[n]["schema"] for n in MODELS if n.startswith(("stg_", "int_"))} == {"staging"}
    assert {models[n]["schema"] for n in MODELS if n.startswith(("fct_", "mart_"))} == {"mart"}
    assert {models[n]["database"] for n in MODELS} == {"local-project"}
    assert models["stg_events_dead_letter"]["config"]["materialized"] == "table"
    sessions = models["int_sessions"]["config"]
    assert (sessions["materialized"], sessions["incremental_strategy"], sessions["unique_key"]) == (
        "incremental", "delete+insert", "anonymous_id",
    )  # fmt: skip
    # every model's column types are enforced (a contract), in BigQuery's names
    for name in MODELS:
        assert models[name]["config"]["contract"]["enforced"], name
    money = models["mart_daily_sales"]["columns"]["gross_revenue"]["data_type"]
    rate = models["mart_conversion_funnel"]["columns"]["conversion_rate"]["data_type"]
    assert (money, rate) == ("numeric", "float64")


def test_incremental_branches_render_valid_bigquery_sql(
    tmp_path: Path, incremental: Compiled
) -> None:
    sql = incremental.sql("stg_events")
    parse_bigquery(sql)
    assert "max(ingested_at)" in sql and "batch_dates" in sql
    assert "`local-project`.`staging`.`stg_events`" in sql  # {{ this }}
    assert "timestamp_add(loaded.max_ingested_at, interval -60 minute)" in sql
    sessions = incremental.sql("int_sessions")
    parse_bigquery(sessions)
    newest = "select max(last_ingested_at) as newest from `local-project`.`staging`.`int_sessions`"
    assert newest in sessions
    assert "timestamp_add(built.newest, interval -60 minute)" in sessions

    window = compile_bigquery(
        tmp_path / "vars", "-s", "stg_events", "--vars",
        "{min_date: '2026-11-15', max_date: '2026-11-16'}", relations_exist=True,
    )  # fmt: skip
    sql = window.sql("stg_events")
    parse_bigquery(sql)
    # literal dates, so BigQuery prunes the raw partitions: the dates asked for, and the
    # window (2 days either side, twice that for the deliveries compared) around them
    assert re.search(
        r"where event_date between cast\('2026-11-15' as date\) and cast\('2026-11-16' as date\)",
        sql,
    )
    assert "between cast('2026-11-13' as date) and cast('2026-11-18' as date)" in sql
    assert "between cast('2026-11-11' as date) and cast('2026-11-20' as date)" in sql


# --- int_sessions's delete+insert, as dbt would send it to BigQuery ---------------------------


def _schema_fields(manifest: dict[str, Any], model: str) -> list[Any]:
    """The model's contract columns as BigQuery SchemaFields (what BigQuery would report for
    the table and for a query of the model)."""
    from google.cloud.bigquery import SchemaField

    node = next(n for n in manifest["nodes"].values() if n["name"] == model)
    return [SchemaField(c["name"], c["data_type"].upper()) for c in node["columns"].values()]


def run_bigquery_recorded(tmp: Path, model: str, manifest: dict[str, Any]) -> list[str]:
    """`dbt run -s model --target prod` against a BigQuery that exists only here: every
    relation exists with the model's contract columns, and each statement dbt sends is
    recorded and answered as an empty script. The materialization runs as it would in
    production (dbt-bigquery's, with the project's overrides). `manifest`: a compiled
    manifest, for the model's contract columns."""
    from dbt.adapters.bigquery.column import BigQueryColumn

    fields = _schema_fields(manifest, model)
    statements: list[str] = []

    def raw_execute(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        job = SimpleNamespace(
            statement_type="SCRIPT", total_bytes_processed=0, total_bytes_billed=0,
            slot_millis=0, location="EU", job_id="recorded", project=ENV["GCP_PROJECT"],
        )  # fmt: skip
        return job, mock.MagicMock(schema=fields, __iter__=lambda _: iter([]))

    def columns(self: Any, relation: Any) -> list[Any]:
        return [BigQueryColumn(f.name, f.field_type) for f in fields]

    def drop(self: Any, relation: Any) -> None:
        statements.append(f"-- drop {relation}")

    patches = [
        mock.patch("dbt.adapters.bigquery.impl.BigQueryAdapter.get_relation", _existing_relation),
        mock.patch(
            "dbt.adapters.bigquery.connections.BigQueryConnectionManager.raw_execute", raw_execute
        ),
        mock.patch("dbt.adapters.bigquery.impl.BigQueryAdapter.get_columns_in_relation", columns),
        mock.patch("dbt.adapters.bigquery.impl.BigQueryAdapter.drop_relation", drop),
    ]
    invoke_offline(tmp, "run", "-s", model, patches=patches)
    return statements


def test_int_sessions_replaces_only_the_rebuilt_visitors_on_bigquery(
    tmp_path: Path, compiled: Compiled
) -> None:
    """A refresh of int_sessions on BigQuery builds the sessions of the visitors with new
    events into a temporary table, then, in one transaction, deletes those visitors'
    sessions and inserts the new ones: no rebuild of the whole table (the scan of all of
    stg_events a table materialization costs at every refresh), no merge that would keep a
    session a late event merged away."""
    statements = run_bigquery_recorded(tmp_path, "int_sessions", compiled.manifest)
    target = "`local-project`.`staging`.`int_sessions`"
    builds = [s for s in statements if re.search(r"create or replace table", s, re.I)]
    assert len(builds) == 1
    tmp = re.search(r"create or replace table (`local-project`\.`staging`\.`(\w+)`)", builds[0])
    assert tmp is not None and tmp.group(2).startswith("int_sessions__dbt_tmp"), builds[0][:300]
    # the temporary table holds only the visitors with new events (the incremental branch,
    # against the newest last_ingested_at already built)
    assert f"select max(last_ingested_at) as newest from {target}" in builds[0].lower()
    scripts = [s for s in statements if "begin transaction" in s.lower()]
    assert len(scripts) == 1, statements
    parsed = [
        statement
        for statement in sqlglot.parse(scripts[0], read="bigquery")
        if statement is not None
    ]
    kinds = [type(statement).__name__ for statement in parsed]
    assert kinds == ["Transaction", "Delete", "Insert", "Commit"], kinds
    delete, insert = parsed[1], parsed[2]
    assert delete.this.sql(dialect="bigquery").startswith(target)
    condition = delete.args["where"].sql(dialect="bigquery")
    assert "(anonymous_id) IN (SELECT DISTINCT anonymous_id FROM " + tmp.group(1) in condition
    assert insert.this.sql(dialect="bigquery").startswith(target)
    assert tmp.group(1) in insert.expression.sql(dialect="bigquery")
    assert not any(re.search(r"\bmerge\b", s, re.I) for s in statements)
    assert statements[-1] == f"-- drop {tmp.group(1)}"  # the temporary table goes


def test_other_incremental_strategies_stay_dbt_bigquerys(
    tmp_path: Path, compiled: Compiled
) -> None:
    """The project's delete+insert overrides the macros every BigQuery incremental model
    goes through: stg_events still replaces its day partitions with dbt-bigquery's
    insert_overwrite (a merge that deletes the replaced partitions' rows)."""
    statements = run_bigquery_recorded(tmp_path, "stg_events", compiled.manifest)
    scripts = [s.lower() for s in statements if "dbt_partitions_for_replacement" in s.lower()]
    assert len(scripts) == 1, statements
    assert "merge into `local-project`.`staging`.`stg_events`" in scripts[0]
    assert "when not matched by source" in scripts[0] and "then delete" in scripts[0]
    assert not any("begin transaction" in s.lower() for s in statements)
