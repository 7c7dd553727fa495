"""The production history store: the `monitoring` dataset in BigQuery.

`data_quality_checks` is partitioned by day of `evaluated_at` and clustered by asset and
check; rows are appended with load jobs (like raw: no streaming buffer); the views come from
the DuckDB SQL through sqlglot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from platform_assets.quality.history_tables import (
    COLUMNS,
    LATEST_SQL,
    SCHEMAS_TABLE,
    TABLE,
    TRENDS_SQL,
    AssetMemory,
    flagged_days_of,
    to_row,
    utcnow,
)
from platform_assets.quality.results import CheckResult, jsonable
from platform_assets.quality.warehouse import to_bigquery


class BigQueryHistoryStore:
    """Production: the `monitoring` dataset (load jobs; views transpiled from DuckDB SQL)."""

    def __init__(
        self, client: Any, project: str, dataset: str = "monitoring", location: str = "EU"
    ) -> None:
        self.client = client
        self.project = project
        self.dataset = dataset
        self.location = location
        self._ready = False

    def table_id(self, table: str = TABLE) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def ensure(self) -> None:
        if self._ready:
            return
        from google.cloud import bigquery

        dataset = bigquery.Dataset(f"{self.project}.{self.dataset}")
        dataset.location = self.location
        self.client.create_dataset(dataset, exists_ok=True)
        table = bigquery.Table(
            self.table_id(),
            schema=[
                bigquery.SchemaField(name, bq, description=doc) for name, _, bq, doc in COLUMNS
            ],
        )
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field="evaluated_at"
        )
        table.clustering_fields = ["asset", "check_name"]
        self.client.create_table(table, exists_ok=True)
        self.client.create_table(
            bigquery.Table(
                self.table_id(SCHEMAS_TABLE),
                schema=[
                    bigquery.SchemaField("asset", "STRING"),
                    bigquery.SchemaField("seen_at", "TIMESTAMP"),
                    bigquery.SchemaField("recorded_at", "TIMESTAMP"),
                    bigquery.SchemaField("columns", "STRING"),
                ],
            ),
            exists_ok=True,
        )
        qualified = f"`{self.project}.{self.dataset}.{TABLE}`"
        for name, sql in (("quality_trends", TRENDS_SQL), ("quality_latest", LATEST_SQL)):
            body = to_bigquery(sql.replace(f"from {TABLE}", "from __history__"))
            body = body.replace("__history__", qualified)
            self.client.query(
                f"create or replace view `{self.project}.{self.dataset}.{name}` as {body}",
                location=self.location,
            ).result()
        self._ready = True

    def _load(self, table: str, rows: list[dict[str, Any]]) -> None:
        from google.cloud import bigquery

        job = self.client.load_table_from_json(
            jsonable(rows),
            self.table_id(table),
            job_config=bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            ),
            location=self.location,
        )
        job.result()

    def record(
        self, results: Sequence[CheckResult], *, run_id: str = "", source: str = "dagster"
    ) -> int:
        if not results:
            return 0
        self.ensure()
        self._load(TABLE, [to_row(r, run_id=run_id, source=source) for r in results])
        return len(results)

    def _select(self, sql: str, params: list[tuple[str, str, Any]]) -> list[dict[str, Any]]:
        from google.cloud import bigquery

        self.ensure()
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(name, typ, value) for name, typ, value in params
            ]
        )
        job = self.client.query(sql, job_config=config, location=self.location)
        return [dict(row.items()) for row in job.result()]

    def last_schema(self, asset: str) -> list[tuple[str, str]] | None:
        rows = self._select(
            f"select columns from `{self.table_id(SCHEMAS_TABLE)}` where asset = @asset "
            f"order by recorded_at desc limit 1",
            [("asset", "STRING", asset)],
        )
        return [tuple(c) for c in json.loads(rows[0]["columns"])] if rows else None

    def save_schema(self, asset: str, columns: list[tuple[str, str]], seen_at: datetime) -> None:
        self.ensure()
        self._load(
            SCHEMAS_TABLE,
            [
                {
                    "asset": asset,
                    "seen_at": seen_at,
                    "recorded_at": utcnow(),
                    "columns": json.dumps([list(c) for c in columns]),
                }
            ],
        )

    def recent(self, asset: str, check_name: str, limit: int = 10) -> list[dict[str, Any]]:
        return self._select(
            f"select evaluated_at, as_of, value, passed, status from `{self.table_id()}` "
            f"where asset = @asset and check_name = @check order by evaluated_at desc "
            f"limit {int(limit)}",
            [("asset", "STRING", asset), ("check", "STRING", check_name)],
        )

    def flagged_days(self, asset: str, check_name: str, since: date) -> set[date]:
        rows = self._select(
            f"select details from `{self.table_id()}` where asset = @asset "
            f"and check_name = @check and status in ('warn', 'fail') and as_of >= @since",
            [
                ("asset", "STRING", asset),
                ("check", "STRING", check_name),
                ("since", "TIMESTAMP", datetime.combine(since, datetime.min.time())),
            ],
        )
        return flagged_days_of(rows, since)

    def memory(self, asset: str, since: date, recent: int = 9) -> AssetMemory:
        """Flagged days and recent results of every check of an asset (two queries)."""
        flagged = self._select(
            f"select check_name, details from `{self.table_id()}` where asset = @asset "
            f"and status in ('warn', 'fail') and as_of >= @since",
            [
                ("asset", "STRING", asset),
                ("since", "TIMESTAMP", datetime.combine(since, datetime.min.time())),
            ],
        )
        latest = self._select(
            f"select check_name, evaluated_at, as_of, value, passed, status "
            f"from `{self.table_id()}` where asset = @asset qualify row_number() over "
            f"(partition by check_name order by evaluated_at desc) <= {int(recent)} "
            f"order by check_name, evaluated_at desc",
            [("asset", "STRING", asset)],
        )
        return AssetMemory.from_rows(flagged, latest, since)

    def latest_narrative(
        self, fingerprint: str, since: datetime
    ) -> tuple[dict[str, Any], str] | None:
        if not fingerprint:
            return None
        rows = self._select(
            f"select narrative, narrator from `{self.table_id()}` where fingerprint = @fp "
            f"and evaluated_at >= @since and narrative is not null "
            f"order by evaluated_at desc limit 1",
            [("fp", "STRING", fingerprint), ("since", "TIMESTAMP", since)],
        )
        return (json.loads(rows[0]["narrative"]), rows[0]["narrator"] or "") if rows else None

    def rows(
        self, asset: str | None = None, limit: int = 50, failed_only: bool = False
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if asset:
            where.append("asset = @asset")
            params.append(("asset", "STRING", asset))
        if failed_only:
            where.append("not passed")
        clause = f"where {' and '.join(where)}" if where else ""
        return self._select(
            f"select * from `{self.table_id()}` {clause} "
            f"order by evaluated_at desc limit {int(limit)}",
            params,
        )
