"""`monitoring.data_quality_checks`: every evaluation, plus the schemas last seen and trend views.

Locally the monitoring schema is its own DuckDB file (`DATA_DIR/monitoring.duckdb`, attached
as the catalog `monitoring`), not a schema inside the warehouse file: dbt is the warehouse's
single writer and holds its lock for a whole build, while checks run during builds (checks of
`stg_events` run while the whole-table models build). A separate file means recording a
result never waits for dbt and never makes dbt wait. Writers open it for a moment and retry
while another writer holds it. Read it with
`duckdb.connect('data/monitoring.duckdb', read_only=True)` or
`python -m platform_assets.quality history`.

In BigQuery the same tables live in the `monitoring` dataset: `data_quality_checks`
partitioned by day of `evaluated_at` and clustered by asset and check, rows appended with
load jobs (like raw: no streaming buffer), views created from the same SQL via sqlglot.

Views: `quality_trends` (per asset and day: evaluations, failures by severity, pass rate)
and `quality_latest` (the latest result of every asset check).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Protocol

from platform_assets.quality.history_bigquery import BigQueryHistoryStore
from platform_assets.quality.history_duckdb import DuckDBHistoryStore
from platform_assets.quality.history_tables import AssetMemory
from platform_assets.quality.results import CheckResult
from platform_core.settings import Settings

__all__ = ["BigQueryHistoryStore", "DuckDBHistoryStore", "HistoryStore", "history_for"]


class HistoryStore(Protocol):
    def record(
        self, results: Sequence[CheckResult], *, run_id: str = "", source: str = "dagster"
    ) -> int: ...

    def last_schema(self, asset: str) -> list[tuple[str, str]] | None: ...

    def save_schema(
        self, asset: str, columns: list[tuple[str, str]], seen_at: datetime
    ) -> None: ...

    def recent(self, asset: str, check_name: str, limit: int = 10) -> list[dict[str, Any]]: ...

    def flagged_days(self, asset: str, check_name: str, since: date) -> set[date]: ...

    def memory(self, asset: str, since: date, recent: int = 9) -> AssetMemory: ...

    def latest_narrative(
        self, fingerprint: str, since: datetime
    ) -> tuple[dict[str, Any], str] | None: ...

    def rows(
        self, asset: str | None = None, limit: int = 50, failed_only: bool = False
    ) -> list[dict[str, Any]]: ...


def history_for(settings: Settings) -> HistoryStore:
    """The configured deployment's history store (no connection is made here)."""
    if settings.is_local:
        return DuckDBHistoryStore(settings.monitoring_path)
    from google.cloud import bigquery

    client = bigquery.Client(project=settings.gcp_project, location=settings.bq_location)
    return BigQueryHistoryStore(
        client, settings.gcp_project, settings.bq_monitoring_dataset, settings.bq_location
    )
