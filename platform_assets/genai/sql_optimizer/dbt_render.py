"""The project's dbt models and analyses as BigQuery runs them, compiled offline.

Production SQL is what the optimizer must judge, so it reads dbt's `prod` rendering (BigQuery
dialect, dispatched macros, partition and cluster configs), not the local DuckDB one. `dbt
compile` for BigQuery asks Google for credentials even with `--no-introspect`; here dbt runs
in-process with the BigQuery connection manager's `open` handing back a client that is never
used, so nothing leaves the machine. Every relation then looks absent, so incremental models
render their full-build branch: the query an analyst would reason about.

The rendering lands in `dbt_project/target/bigquery/` (`make prepare` refreshes it).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from platform_core.settings import DBT_PROJECT_DIR

RENDER_DIR = DBT_PROJECT_DIR / "target" / "bigquery"
QUERY_TYPES = ("model", "analysis")


class RenderError(RuntimeError):
    """dbt could not compile the project for BigQuery."""


@dataclass(frozen=True)
class ProjectQuery:
    """One compiled model or analysis."""

    name: str
    resource_type: str  # model | analysis
    path: str  # relative to the dbt project, e.g. models/marts/fct_orders.sql
    sql: str

    @property
    def label(self) -> str:
        return f"{self.resource_type} {self.name} ({self.path})"


class _UnusedClient:
    """Stands in for google.cloud.bigquery.Client: every call answers 'nothing there'."""

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: []


def _offline_open(cls: Any, connection: Any) -> Any:
    from dbt.adapters.contracts.connection import ConnectionState

    connection.handle = _UnusedClient()
    connection.state = ConnectionState.OPEN
    return connection


def render_bigquery(settings: Any, target_dir: Path = RENDER_DIR) -> Path:
    """Compile every model and analysis for the `prod` target; returns the manifest path."""
    from dbt.cli.main import dbtRunner

    env = settings.dbt_env()
    open_patch = mock.patch(
        "dbt.adapters.bigquery.connections.BigQueryConnectionManager.open",
        classmethod(_offline_open),
    )
    with mock.patch.dict(os.environ, env), open_patch:
        result = dbtRunner().invoke(
            [
                "compile", "--target", "prod", "--no-introspect", "--quiet",
                "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
                "--target-path", str(target_dir), "--log-path", str(target_dir / "logs"),
            ]
        )  # fmt: skip
    if not result.success:
        raise RenderError(f"dbt compile --target prod failed: {result.exception}")
    return target_dir / "manifest.json"


def load_manifest(settings: Any, *, refresh: bool = False) -> dict[str, Any]:
    """The BigQuery rendering's manifest, compiled first when asked or missing."""
    path = RENDER_DIR / "manifest.json"
    if refresh or not path.exists():
        path = render_bigquery(settings)
    return json.loads(path.read_text())


def project_queries(manifest: dict[str, Any]) -> list[ProjectQuery]:
    """Every model and analysis of the project, by type then name."""
    queries = [
        ProjectQuery(
            name=node["name"],
            resource_type=node["resource_type"],
            path=node["original_file_path"],
            sql=node["compiled_code"],
        )
        for node in manifest["nodes"].values()
        if node["resource_type"] in QUERY_TYPES and node.get("compiled_code")
    ]
    return sorted(queries, key=lambda q: (QUERY_TYPES.index(q.resource_type), q.name))


def fingerprint(manifest: dict[str, Any]) -> str:
    """What the audit depends on: the models' and analyses' sources and the project's macros.

    Works on any rendering of the project (the local manifest `make prepare` writes, or the
    BigQuery one) and ignores what changes on every parse (timestamps, invocation ids)."""
    project = manifest.get("metadata", {}).get("project_name", "")
    parts = [
        (node_id, (node.get("checksum") or {}).get("checksum", ""))
        for node_id, node in manifest["nodes"].items()
        if node["resource_type"] in QUERY_TYPES
    ]
    parts += [
        (macro_id, hashlib.sha256(macro.get("macro_sql", "").encode()).hexdigest())
        for macro_id, macro in manifest.get("macros", {}).items()
        if macro.get("package_name") == project
    ]
    return hashlib.sha256(json.dumps(sorted(parts)).encode()).hexdigest()[:16]
