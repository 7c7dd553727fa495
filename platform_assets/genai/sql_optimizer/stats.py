"""Storage statistics of the local warehouse, in BigQuery's units.

BigQuery bills a query by the logical bytes of the columns it reads, in the partitions it
reads: 8 bytes per INT64, FLOAT64, DATE or TIMESTAMP value, 16 per NUMERIC, 1 per BOOL,
2 + the UTF-8 length per STRING, 0 per NULL. For every table these are measured from the
local data: per partition (day), the rows and the logical bytes of each column. The local
estimate of a query is then the sum over its scans of the bytes of the columns read in the
partitions kept, which is what a BigQuery dry run reports for the same data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from platform_assets.genai.sql_optimizer.schema import UNKNOWN, TableInfo, WarehouseSchema
from platform_assets.genai.sql_optimizer.warehouse import (
    LocalQueryError,
    local_relation,
    run_select,
)

log = logging.getLogger(__name__)

FIXED_BYTES = {
    "INT64": 8, "FLOAT64": 8, "DATE": 8, "TIMESTAMP": 8, "DATETIME": 8, "TIME": 8,
    "NUMERIC": 16, "BIGNUMERIC": 32, "INTERVAL": 16, "BOOL": 1,
}  # fmt: skip
VARIABLE = ("STRING", "BYTES", "JSON")


@dataclass
class PartitionStats:
    rows: int
    column_bytes: dict[str, int]


@dataclass
class TableStats:
    partitions: dict[date | None, PartitionStats] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions.values())

    def bytes(self, columns: set[str], keep: Any = None) -> int:
        """Bytes of `columns` in the partitions `keep(day)` accepts (all without `keep`)."""
        return sum(
            sum(stats.column_bytes.get(c, 0) for c in columns)
            for day, stats in self.partitions.items()
            if keep is None or keep(day)
        )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _size_expression(name: str, bq_type: str, duck_type: str) -> str:
    column = _quote(name)
    kind = bq_type.split("<")[0].split("(")[0].upper()
    if kind in FIXED_BYTES:
        return f"{FIXED_BYTES[kind]} * count({column})"
    if kind in VARIABLE or (kind == UNKNOWN and "VARCHAR" in duck_type.upper()):
        return f"sum(2 + strlen(CAST({column} AS VARCHAR)))"
    if kind == UNKNOWN and duck_type.upper().startswith("DECIMAL"):
        return f"16 * count({column})"
    if kind == UNKNOWN and duck_type.upper() == "BOOLEAN":
        return f"count({column})"
    if kind == UNKNOWN:
        return f"8 * count({column})"
    return f"sum(2 + strlen(CAST({column} AS VARCHAR)))"  # STRUCT, ARRAY: their text


def _exists(con: Any, table: TableInfo) -> bool:
    if table.kind == "raw":
        return True
    rows = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [table.dataset, table.name],
    ).fetchone()
    return bool(rows and rows[0])


def table_stats(con: Any, settings: Any, table: TableInfo) -> TableStats:
    relation = local_relation(settings, table).sql(dialect="duckdb")
    described = run_select(con, f"DESCRIBE SELECT * FROM {relation} AS t")
    duck_types = {row[0]: str(row[1]) for row in described.rows}
    bq_types = dict(table.columns)
    names = [n for n in table.column_names if n in duck_types]
    partition = _quote(table.partition_column) if table.partition_column in duck_types else "NULL"
    sizes = ", ".join(
        f"coalesce({_size_expression(n, bq_types.get(n, UNKNOWN), duck_types[n])}, 0)"
        for n in names
    )
    result = run_select(
        con,
        f"SELECT CAST({partition} AS DATE) AS p, count(*) AS n{', ' if sizes else ''}{sizes} "
        f"FROM {relation} AS t GROUP BY 1",
    )
    stats = TableStats()
    for row in result.rows:
        day, rows, *sizes_ = row
        stats.partitions[day] = PartitionStats(
            int(rows), dict(zip(names, map(int, sizes_), strict=True))
        )
    return stats


def collect_stats(
    con: Any, settings: Any, schema: WarehouseSchema
) -> dict[tuple[str, str], TableStats]:
    """Statistics of every table the local warehouse has (a missing one reads as empty)."""
    collected: dict[tuple[str, str], TableStats] = {}
    for key, table in sorted(schema.tables.items()):
        if not _exists(con, table):
            continue
        try:
            collected[key] = table_stats(con, settings, table)
        except LocalQueryError as error:
            log.warning("no statistics for %s: %s", table.ref, error)
    return collected
