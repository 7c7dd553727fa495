"""Fixtures of the GenAI tools' tests: the project rendered for BigQuery, and the small shop's
warehouse built by dbt (a real DuckDB file and Parquet lake, read by the optimizer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from platform_assets.dbt.read_snapshot import publish_read_snapshot
from platform_core.settings import DBT_PROJECT_DIR, read_path_of


@pytest.fixture(scope="session")
def bigquery_manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every model and analysis compiled for BigQuery, offline (default settings)."""
    from platform_assets.genai.sql_optimizer.dbt_render import render_bigquery
    from platform_core.settings import Settings

    path = render_bigquery(Settings(), tmp_path_factory.mktemp("bigquery"))
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def warehouse_schema(bigquery_manifest: dict[str, Any]) -> Any:
    from platform_assets.genai.sql_optimizer.schema import build_schema

    return build_schema(bigquery_manifest, project="local-project", raw_dataset="raw")


@pytest.fixture(scope="session")
def shop_warehouse(small_platform: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The small shop (8 days, 2026-11-13..20) built into its DuckDB warehouse: seeds and models.

    dbt runs in a process of its own: dbt-duckdb keeps its connection to the file open in the
    process that ran it, and DuckDB lets one process open a file in one configuration only."""
    target = tmp_path_factory.mktemp("dbt_target")
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"), "build", "--target", "local", "--quiet",
            "--resource-type", "seed", "--resource-type", "model",
            "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(target), "--log-path", str(target / "logs"),
        ],
        check=True,
        env={
            **os.environ,
            "DUCKDB_PATH": str(small_platform.warehouse),
            "LAKE_DIR": str(small_platform.lake),
        },
    )  # fmt: skip
    assert Path(small_platform.warehouse).exists()
    # readers (the optimizer among them) read what dbt published, as after a Dagster refresh
    publish_read_snapshot(Path(small_platform.warehouse), read_path_of(small_platform.warehouse))
    return small_platform


@pytest.fixture(scope="session")
def optimizer(shop_warehouse: Any, bigquery_manifest: dict[str, Any]) -> Any:
    """The local optimizer on the shop (deterministic provider: no LLM)."""
    from platform_assets.genai.sql_optimizer.optimizer import build_optimizer
    from platform_core.settings import get_settings

    return build_optimizer(get_settings(), manifest=bigquery_manifest)


@pytest.fixture
def duckdb_rows(shop_warehouse: Any, warehouse_schema: Any) -> Any:
    """Run BigQuery SQL on the shop's warehouse on a connection of the test's own."""
    import duckdb

    from platform_assets.genai.sql_optimizer.warehouse import localize
    from platform_core.settings import get_settings

    def run(sql: str, *, bigquery: bool = True) -> list[tuple[Any, ...]]:
        import sqlglot

        text = (
            localize(sqlglot.parse_one(sql, read="bigquery"), warehouse_schema, get_settings())
            if bigquery
            else sql
        )
        con = duckdb.connect(":memory:")
        try:  # attached as the optimizer does: a file is open once per process in DuckDB
            con.execute(f"ATTACH '{shop_warehouse.warehouse}' AS shop (READ_ONLY)")
            con.execute("USE shop")
            con.execute("SET TimeZone = 'UTC'")
            return con.execute(text).fetchall()
        finally:
            con.close()

    return run
