"""Bytes a query processes: a BigQuery dry run on GCP, an estimate from local statistics else.

The local estimate follows BigQuery's billing model (see `stats`): for each scan of the
planned query (`analysis.Scan`), the logical bytes of the columns it reads in the partitions
its filters keep. Clustering is not counted, as a dry run does not count it either: a dry
run reports the upper bound, before block pruning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from platform_assets.genai.sql_optimizer.analysis import QueryModel, Scan
from platform_assets.genai.sql_optimizer.predicates import partition_filter
from platform_assets.genai.sql_optimizer.stats import TableStats


class Estimator(Protocol):
    label: str

    def estimate(self, model: QueryModel, sql: str) -> int | None:
        """Bytes processed by the query (None when it cannot be estimated)."""


def scan_filter(scan: Scan) -> Callable[[Any], bool] | None:
    if not scan.table.partition_column:
        return None
    return partition_filter(scan.predicates, scan.alias, scan.table.partition_column).keeps


class LocalEstimator:
    """From the local warehouse's storage statistics, loaded on first use."""

    label = "estimate from local warehouse statistics"

    def __init__(self, load_stats: Callable[[], dict[tuple[str, str], TableStats]]) -> None:
        self._load_stats = load_stats
        self._stats: dict[tuple[str, str], TableStats] | None = None

    @property
    def stats(self) -> dict[tuple[str, str], TableStats]:
        if self._stats is None:
            self._stats = self._load_stats()
        return self._stats

    def scan_bytes(self, scan: Scan) -> int:
        stats = self.stats.get(scan.table.key)
        return stats.bytes(scan.columns, scan_filter(scan)) if stats else 0

    def estimate(self, model: QueryModel, sql: str) -> int | None:
        return sum(self.scan_bytes(scan) for scan in model.scans)


class DryRunEstimator:
    """BigQuery's own answer: a dry run (free, nothing executed)."""

    label = "BigQuery dry run"

    def __init__(self, client: Any, location: str | None = None) -> None:
        self.client = client
        self.location = location

    def estimate(self, model: QueryModel, sql: str) -> int | None:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
        job = self.client.query(sql, job_config=config, location=self.location)
        return int(job.total_bytes_processed or 0)
