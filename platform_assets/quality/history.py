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

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from platform_assets.quality.results import CheckResult, dumps, jsonable
from platform_assets.quality.warehouse import to_bigquery
from platform_core.settings import Settings

log = logging.getLogger(__name__)

TABLE = "data_quality_checks"
SCHEMAS_TABLE = "schema_snapshots"

# (name, DuckDB type, BigQuery type, description)
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("evaluation_id", "VARCHAR", "STRING", "Unique id of this row"),
    ("evaluated_at", "TIMESTAMP", "TIMESTAMP", "When the rule ran (UTC)"),
    ("as_of", "TIMESTAMP", "TIMESTAMP", "The moment the data was judged as of (UTC)"),
    ("asset", "VARCHAR", "STRING", "Asset key, e.g. staging/stg_orders"),
    ("check_name", "VARCHAR", "STRING", "Asset check name"),
    ("rule", "VARCHAR", "STRING", "freshness, volume, null_rate, duplicates, schema, references"),
    ("passed", "BOOLEAN", "BOOL", "The rule's verdict"),
    ("status", "VARCHAR", "STRING", "pass, warn, fail (critical) or error (not evaluated)"),
    ("severity", "VARCHAR", "STRING", "error (critical) or warn"),
    ("blocking", "BOOLEAN", "BOOL", "Whether a failure blocks downstream assets"),
    ("metric", "VARCHAR", "STRING", "What was measured"),
    ("value", "DOUBLE", "FLOAT64", "The measured value"),
    ("expected_low", "DOUBLE", "FLOAT64", "Lower end of the expected range"),
    ("expected_high", "DOUBLE", "FLOAT64", "Upper end of the expected range"),
    ("kind", "VARCHAR", "STRING", "What failed (drop, spike, nulls:col, orphans, ...)"),
    ("fingerprint", "VARCHAR", "STRING", "asset+check+kind+severity hash (alert suppression)"),
    ("description", "VARCHAR", "STRING", "The rule's one-line finding"),
    ("sample", "VARCHAR", "STRING", "JSON: rows or keys that explain the result"),
    ("details", "VARCHAR", "STRING", "JSON: baseline, z-score, per-column figures"),
    ("narrative", "VARCHAR", "STRING", "JSON: summary, likely causes, evidence, actions"),
    ("narrator", "VARCHAR", "STRING", "Who wrote the narrative (model or deterministic)"),
    ("run_id", "VARCHAR", "STRING", "Dagster run id, when run by Dagster"),
    ("source", "VARCHAR", "STRING", "dagster, cli or bench"),
)

TRENDS_SQL = f"""
select
    asset,
    cast(evaluated_at as date) as day,
    count(*) as evaluations,
    count(distinct check_name) as checks,
    sum(case when passed then 0 else 1 end) as failures,
    sum(case when not passed and severity = 'error' then 1 else 0 end) as critical_failures,
    sum(case when not passed and severity = 'warn' then 1 else 0 end) as warnings,
    avg(case when passed then 1.0 else 0.0 end) as pass_rate
from {TABLE}
group by asset, cast(evaluated_at as date)
"""

LATEST_SQL = f"""
select * exclude (row_rank)
from (
    select
        *,
        row_number() over (
            partition by asset, check_name order by evaluated_at desc, evaluation_id desc
        ) as row_rank
    from {TABLE}
) as ranked
where row_rank = 1
"""


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

    def latest_narrative(
        self, fingerprint: str, since: datetime
    ) -> tuple[dict[str, Any], str] | None: ...

    def rows(
        self, asset: str | None = None, limit: int = 50, failed_only: bool = False
    ) -> list[dict[str, Any]]: ...


def _days(rows: list[dict[str, Any]], since: date) -> set[date]:
    days = set()
    for row in rows:
        value = json.loads(row["details"] or "{}").get("day")
        if value and date.fromisoformat(value[:10]) >= since:
            days.add(date.fromisoformat(value[:10]))
    return days


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def to_row(result: CheckResult, *, run_id: str, source: str) -> dict[str, Any]:
    return {
        "evaluation_id": uuid.uuid4().hex,
        "evaluated_at": result.evaluated_at or utcnow(),
        "as_of": result.as_of,
        "asset": result.asset,
        "check_name": result.check_name,
        "rule": result.rule,
        "passed": result.passed,
        "status": result.status,
        "severity": result.severity,
        "blocking": result.blocking,
        "metric": result.metric,
        "value": None if result.value is None else float(result.value),
        "expected_low": result.expected_low,
        "expected_high": result.expected_high,
        "kind": result.kind,
        "fingerprint": result.fingerprint,
        "description": result.description,
        "sample": dumps(result.sample),
        "details": dumps(result.details),
        "narrative": dumps(result.narrative) if result.narrative else None,
        "narrator": result.narrator or None,
        "run_id": run_id or None,
        "source": source,
    }


def _lock_error(error: Exception) -> bool:
    text = str(error).lower()
    return "lock" in text


class DuckDBHistoryStore:
    """The local monitoring file, attached as catalog `monitoring` on every connection."""

    catalog = "monitoring"

    def __init__(self, path: Path | str, *, lock_timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self._ready = False

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        import duckdb

        deadline = time.monotonic() + self.lock_timeout
        pause = 0.05
        while True:
            con = duckdb.connect(":memory:")
            try:
                mode = " (read_only)" if read_only else ""
                con.execute(f"attach '{self.path}' as {self.catalog}{mode}")
                break
            except duckdb.Error as error:
                con.close()
                if not _lock_error(error) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        try:
            yield con
        finally:
            con.close()

    def _complete(self) -> bool:
        """Tables and views already there (checked read-only: no write lock taken)."""
        if not self.path.exists():
            return False
        with self.connect(read_only=True) as con:
            found = {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables "
                    f"where table_catalog = '{self.catalog}'"
                ).fetchall()
            }
        return {TABLE, SCHEMAS_TABLE, "quality_trends", "quality_latest"} <= found

    def ensure(self) -> None:
        if self._ready:
            return
        if self._complete():
            self._ready = True
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        columns = ", ".join(f"{name} {typ}" for name, typ, _, _ in COLUMNS)
        m = self.catalog
        with self.connect() as con:
            con.execute(f"create table if not exists {m}.{TABLE} ({columns})")
            con.execute(
                f"create table if not exists {m}.{SCHEMAS_TABLE} "
                f"(asset varchar, seen_at timestamp, recorded_at timestamp, "
                f"columns varchar)"
            )
            con.execute(f"create or replace view {m}.quality_trends as {TRENDS_SQL}")
            con.execute(f"create or replace view {m}.quality_latest as {LATEST_SQL}")
        self._ready = True

    def record(
        self, results: Sequence[CheckResult], *, run_id: str = "", source: str = "dagster"
    ) -> int:
        if not results:
            return 0
        self.ensure()
        rows = [to_row(r, run_id=run_id, source=source) for r in results]
        names = [c[0] for c in COLUMNS]
        placeholders = ", ".join("?" for _ in names)
        with self.connect() as con:
            con.executemany(
                f"insert into {self.catalog}.{TABLE} ({', '.join(names)}) values ({placeholders})",
                [[row[n] for n in names] for row in rows],
            )
        return len(rows)

    def last_schema(self, asset: str) -> list[tuple[str, str]] | None:
        self.ensure()
        with self.connect(read_only=True) as con:
            row = con.execute(
                f"select columns from {self.catalog}.{SCHEMAS_TABLE} where asset = ? "
                f"order by recorded_at desc limit 1",
                [asset],
            ).fetchone()
        return [tuple(c) for c in json.loads(row[0])] if row else None

    def save_schema(self, asset: str, columns: list[tuple[str, str]], seen_at: datetime) -> None:
        self.ensure()
        with self.connect() as con:
            con.execute(
                f"insert into {self.catalog}.{SCHEMAS_TABLE} values (?, ?, ?, ?)",
                [asset, seen_at, utcnow(), json.dumps([list(c) for c in columns])],
            )

    def _select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        self.ensure()
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def recent(self, asset: str, check_name: str, limit: int = 10) -> list[dict[str, Any]]:
        return self._select(
            f"select evaluated_at, as_of, value, passed, status from {self.catalog}.{TABLE} "
            f"where asset = ? and check_name = ? order by evaluated_at desc limit ?",
            [asset, check_name, limit],
        )

    def flagged_days(self, asset: str, check_name: str, since: date) -> set[date]:
        """Days a daily rule judged anomalous (warn/fail; not evaluation errors)."""
        rows = self._select(
            f"select details from {self.catalog}.{TABLE} where asset = ? and check_name = ? "
            f"and status in ('warn', 'fail') and as_of >= ?",
            [asset, check_name, since],
        )
        return _days(rows, since)

    def latest_narrative(
        self, fingerprint: str, since: datetime
    ) -> tuple[dict[str, Any], str] | None:
        if not fingerprint:
            return None
        rows = self._select(
            f"select narrative, narrator from {self.catalog}.{TABLE} where fingerprint = ? "
            f"and evaluated_at >= ? and narrative is not null "
            f"order by evaluated_at desc limit 1",
            [fingerprint, since],
        )
        return (json.loads(rows[0]["narrative"]), rows[0]["narrator"] or "") if rows else None

    def rows(
        self, asset: str | None = None, limit: int = 50, failed_only: bool = False
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if asset:
            where.append("asset = ?")
            params.append(asset)
        if failed_only:
            where.append("not passed")
        clause = f"where {' and '.join(where)}" if where else ""
        return self._select(
            f"select * from {self.catalog}.{TABLE} {clause} order by evaluated_at desc limit ?",
            [*params, limit],
        )

    def trends(self, asset: str | None = None) -> list[dict[str, Any]]:
        clause, params = ("where asset = ?", [asset]) if asset else ("", [])
        return self._select(
            f"select * from {self.catalog}.quality_trends {clause} order by asset, day", params
        )


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
        return _days(rows, since)

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


def history_for(settings: Settings) -> HistoryStore:
    """The configured deployment's history store (no connection is made here)."""
    if settings.is_local:
        return DuckDBHistoryStore(settings.monitoring_path)
    from google.cloud import bigquery

    client = bigquery.Client(project=settings.gcp_project, location=settings.bq_location)
    return BigQueryHistoryStore(
        client, settings.gcp_project, settings.bq_monitoring_dataset, settings.bq_location
    )
