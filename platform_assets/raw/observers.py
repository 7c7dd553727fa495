"""What changed in the raw tables since the last look: new Parquet files in the local lake
(their footers give the rows), or BigQuery table and partition metadata.

Lake: new files per table are found with a cursor of (newest change time, names changed in
the last `SETTLE_SECONDS`), which is exact even when a file is renamed into place while the
sensor lists the directory, and small enough to keep in the sensor cursor (it survives
restarts of the daemon). BigQuery: table metadata (last modified, num_rows, streaming
buffer) and, for tables that changed, `INFORMATION_SCHEMA.PARTITIONS` for the day
partitions modified since.
"""

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from platform_core.raw.schema import RAW_TABLES, raw_table
from platform_core.settings import Settings
from streaming.raw.compaction import (
    COMPACTED_PREFIX,
    RECENT_INPUT_WINDOW_NS,
    changed_ns,
    compacted_inputs,
    is_data_file,
)

SETTLE_SECONDS = 30.0  # a file renamed into place is seen within this long of its ctime

PARTITIONS_SQL = """
select partition_id, total_rows, unix_millis(last_modified_time) as last_modified_ms
from `{project}.{dataset}.INFORMATION_SCHEMA.PARTITIONS`
where table_name = @table_name and last_modified_time > timestamp_millis(@since_ms)
order by partition_id
"""


# --- what changed ---------------------------------------------------------------------------


@dataclass
class TableChange:
    """New data in one raw table since the previous tick."""

    table: str
    new_files: int = 0
    rows: int = 0
    partitions: set[str] = field(default_factory=set)
    rewritten_files: int = 0  # compaction output whose inputs were already reported
    newest_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_new_data(self) -> bool:
        return self.new_files > 0 or self.rows > 0 or bool(self.extra.get("changed"))

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "new_rows": dg.MetadataValue.int(self.rows),
            "partitions_touched": dg.MetadataValue.json(sorted(self.partitions)),
        }
        if self.new_files or self.rewritten_files:
            meta["new_files"] = dg.MetadataValue.int(self.new_files)
        if self.rewritten_files:
            meta["compacted_files_seen"] = dg.MetadataValue.int(self.rewritten_files)
        if self.newest_ns:
            meta["last_modified"] = dg.MetadataValue.timestamp(self.newest_ns / 1e9)
        for key, value in self.extra.items():
            if key != "changed" and value is not None:
                meta[key] = value
        return meta


def partition_value(relative: str) -> str | None:
    """`event_date=2026-11-20/part-x.parquet` -> `2026-11-20`."""
    head = relative.split("/", 1)[0]
    return head.split("=", 1)[1] if "=" in head else None


class LakeObserver:
    """New files of each raw table in the local Parquet lake.

    Per table the state is `{"w": newest change time seen (ns), "recent": [names changed
    within SETTLE_SECONDS of it]}`. A file is new if it changed after `w`, or within the
    settle window before `w` and is not in `recent` (renamed while the previous tick listed).
    """

    kind = "lake"

    def __init__(
        self,
        lake: Path | str,
        tables: Iterable[str] = RAW_TABLES,
        settle_seconds: float = SETTLE_SECONDS,
    ) -> None:
        self.lake = Path(lake)
        self.tables = list(tables)
        self.settle_ns = int(settle_seconds * 1e9)

    @property
    def identity(self) -> str:
        return f"lake:{self.lake.resolve()}"

    def list_files(self, table: str) -> list[tuple[str, int, Path]]:
        root = self.lake / raw_table(table).name
        found: list[tuple[str, int, Path]] = []
        if not root.is_dir():
            return found
        for directory in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                path = Path(entry.path)
                if not entry.is_file() or not is_data_file(path):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # compacted away since the listing
                    continue
                found.append((str(path.relative_to(root)), changed_ns(stat), path))
        return found

    def _inputs_seen(self, path: Path, watermark: int, recent: set[str]) -> bool:
        """Whether every file a merged file replaced had been reported by an earlier tick."""
        inputs = compacted_inputs(path)
        if inputs is None or not watermark or inputs.newest_ns > watermark:
            return False
        if self.settle_ns > RECENT_INPUT_WINDOW_NS:
            return inputs.newest_ns <= watermark - self.settle_ns
        return all(
            changed <= watermark - self.settle_ns or name in recent
            for name, changed in inputs.recent
        )

    def observe(self, state: Mapping[str, Any]) -> tuple[dict[str, TableChange], dict[str, Any]]:
        changes: dict[str, TableChange] = {}
        new_state: dict[str, Any] = {}
        for table in self.tables:
            previous = state.get(table) or {"w": 0, "recent": []}
            watermark = int(previous["w"])
            recent = set(previous["recent"])
            files = self.list_files(table)
            change = TableChange(table)
            for name, changed, path in files:
                is_new = changed > watermark or (
                    changed > watermark - self.settle_ns and name not in recent
                )
                if not is_new:
                    continue
                if path.name.startswith(COMPACTED_PREFIX) and self._inputs_seen(
                    path, watermark, recent
                ):
                    change.rewritten_files += 1  # same rows, already reported
                    continue
                try:
                    rows = pq.read_metadata(path).num_rows
                except FileNotFoundError:
                    continue  # compacted away; its rows arrive in the merged file
                change.new_files += 1
                change.rows += rows
                change.newest_ns = max(change.newest_ns, changed)
                part = partition_value(name)
                if part is not None and rows:
                    change.partitions.add(part)
            top = max([watermark, *(changed for _n, changed, _p in files)])
            new_state[table] = {
                "w": top,
                "recent": sorted(n for n, changed, _p in files if changed > top - self.settle_ns),
            }
            if change.has_new_data:
                changes[table] = change
        return changes, new_state


class BigQueryObserver:
    """Raw tables in BigQuery: table metadata, then the partitions modified since last time.

    Per table the state is `{"modified_ms", "num_rows", "buffer_rows", "partitions_ms"}`.
    Rows still in the streaming buffer count as a change (the table's `modified` may not
    move for them); their day partitions show up in INFORMATION_SCHEMA.PARTITIONS once
    BigQuery extracts them (until then they sit in `__UNPARTITIONED__`, which is skipped).
    """

    kind = "bigquery"

    def __init__(
        self, client: Any, project: str, dataset: str, tables: Iterable[str] = RAW_TABLES
    ) -> None:
        self.client = client
        self.project = project
        self.dataset = dataset
        self.tables = list(tables)

    @property
    def identity(self) -> str:
        return f"bigquery:{self.project}.{self.dataset}"

    def _partitions(self, table: str, since_ms: int) -> list[Any]:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("table_name", "STRING", table),
                bigquery.ScalarQueryParameter("since_ms", "INT64", since_ms),
            ]
        )
        sql = PARTITIONS_SQL.format(project=self.project, dataset=self.dataset)
        return list(self.client.query(sql, job_config=config).result())

    def observe(self, state: Mapping[str, Any]) -> tuple[dict[str, TableChange], dict[str, Any]]:
        changes: dict[str, TableChange] = {}
        new_state: dict[str, Any] = {}
        for table in self.tables:
            previous = state.get(table)
            info = self.client.get_table(f"{self.project}.{self.dataset}.{table}")
            modified = info.modified
            modified_ms = int(modified.timestamp() * 1000) if modified else 0
            num_rows = int(info.num_rows or 0)
            buffer = getattr(info, "streaming_buffer", None)
            buffer_rows = int(getattr(buffer, "estimated_rows", 0) or 0) if buffer else 0
            oldest = getattr(buffer, "oldest_entry_time", None) if buffer else None
            current = {
                "modified_ms": modified_ms,
                "num_rows": num_rows,
                "buffer_rows": buffer_rows,
                "partitions_ms": int((previous or {}).get("partitions_ms", 0)),
            }
            changed = previous is None or any(
                current[k] != previous.get(k) for k in ("modified_ms", "num_rows", "buffer_rows")
            )
            if changed:
                change = TableChange(table, newest_ns=modified_ms * 1_000_000)
                before = (previous or {}).get("num_rows", 0) + (previous or {}).get(
                    "buffer_rows", 0
                )
                change.rows = max(0, num_rows + buffer_rows - before)
                change.extra = {
                    "changed": True,
                    "dagster/row_count": dg.MetadataValue.int(num_rows + buffer_rows),
                    "num_rows": dg.MetadataValue.int(num_rows),
                    "streaming_buffer_rows": dg.MetadataValue.int(buffer_rows),
                    "oldest_buffer_entry": (
                        dg.MetadataValue.timestamp(oldest) if isinstance(oldest, datetime) else None
                    ),
                }
                for row in self._partitions(table, current["partitions_ms"]):
                    pid = str(row["partition_id"])
                    current["partitions_ms"] = max(
                        current["partitions_ms"], int(row["last_modified_ms"])
                    )
                    if len(pid) == 8 and pid.isdigit():
                        change.partitions.add(f"{pid[:4]}-{pid[4:6]}-{pid[6:]}")
                changes[table] = change
            new_state[table] = current
        return changes, new_state


def observer_for(settings: Settings) -> LakeObserver | BigQueryObserver:
    if settings.is_local:
        return LakeObserver(settings.lake_path)
    from google.cloud import bigquery

    client = bigquery.Client(project=settings.gcp_project, location=settings.bq_location)
    return BigQueryObserver(client, settings.gcp_project, settings.bq_raw_dataset)
