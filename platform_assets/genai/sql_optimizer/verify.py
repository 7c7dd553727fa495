"""Whether a rewrite may be called a fix: `verified` means all of these held, on real data.

1. it parses as BigQuery SQL and is a single read-only query (the same safety gate as input);
2. it resolves against the warehouse schema and reads no table the original does not;
3. run on the local DuckDB warehouse (both transpiled by sqlglot, read-only), it returns the
   same column names and types;
4. and the same rows: as a multiset, and in the same order of the ORDER BY keys where the
   original orders its result (ties may come in any order, as in BigQuery).

Floats are compared to 9 significant digits (a sum in another order differs in the last
bits). A query whose original returns no row proves nothing and is not verified, nor is one
that calls RAND() or GENERATE_UUID().
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlglot import exp

from platform_assets.genai.sql_optimizer.analysis import QueryModel, SchemaMismatch, build_model
from platform_assets.genai.sql_optimizer.safety import Refused, parse_read_only
from platform_assets.genai.sql_optimizer.schema import WarehouseSchema
from platform_assets.genai.sql_optimizer.warehouse import (
    LocalQueryError,
    LocalResult,
    localize,
    open_warehouse,
    run_select,
)

RANDOM = (exp.Rand, exp.Uuid)
# DuckDB types as BigQuery would type the same column (BigQuery has one integer type, one
# float, ...): COUNTIF is HUGEINT in DuckDB but INT64 like COUNT(*) in BigQuery.
TYPE_FAMILIES = (
    (("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
      "UINTEGER", "UBIGINT", "UHUGEINT"), "INT64"),
    (("FLOAT", "DOUBLE"), "FLOAT64"),
    (("DECIMAL",), "NUMERIC"),
    (("VARCHAR",), "STRING"),
    (("BOOLEAN",), "BOOL"),
    (("TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "TIMESTAMP"),
     "TIMESTAMP"),
    (("BLOB",), "BYTES"),
)  # fmt: skip


@dataclass
class Verification:
    verified: bool
    text: str
    model: QueryModel | None = None  # the rewrite's model, when it resolved


def bigquery_type(duckdb_type: str) -> str:
    upper = duckdb_type.upper()
    for names, family in TYPE_FAMILIES:
        if any(upper == n or upper.startswith(n + "(") for n in names):
            return family
    return upper  # DATE, lists, structs: compared as they are


def normalize(value: Any) -> Any:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else float(f"{value:.9g}")
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, list | tuple):
        return tuple(normalize(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, normalize(v)) for k, v in value.items()))
    return value


def order_positions(qualified: exp.Expression) -> list[int] | None:
    """Result columns the outermost ORDER BY sorts on ([] when unordered; None when it sorts
    on something the result does not carry)."""
    order = qualified.args.get("order")
    if order is None:
        return []
    head = qualified
    while isinstance(head, exp.SetOperation):
        head = head.left
    projections = head.expressions if isinstance(head, exp.Select) else []
    positions = []
    for ordered in order.expressions:
        key = ordered.this
        match = [
            i
            for i, p in enumerate(projections)
            if p.unalias() == key
            or (isinstance(key, exp.Column) and not key.table and p.alias_or_name == key.name)
        ]
        if not match:
            return None
        positions.append(match[0])
    return positions


def compare_rows(
    original: LocalResult, candidate: LocalResult, positions: list[int] | None
) -> str | None:
    """Why the rows differ, or None when they are the same (as the ORDER BY requires)."""
    left = [tuple(normalize(v) for v in row) for row in original.rows]
    right = [tuple(normalize(v) for v in row) for row in candidate.rows]
    if Counter(left) != Counter(right):
        missing = sum((Counter(left) - Counter(right)).values())
        extra = sum((Counter(right) - Counter(left)).values())
        return f"different rows: {missing} of the original's missing, {extra} extra"
    if positions is None and left != right:
        return "same rows in another order (the original sorts on what its result does not carry)"
    if positions:
        keys = lambda rows: [tuple(r[i] for i in positions) for r in rows]  # noqa: E731
        if keys(left) != keys(right):
            return "same rows in a different order of the ORDER BY keys"
    return None


class LocalVerifier:
    """Runs original and rewrite on the local warehouse (read-only, one connection each time)."""

    def __init__(self, settings: Any, schema: WarehouseSchema, *, timeout: float = 60.0) -> None:
        self.settings = settings
        self.schema = schema
        self.timeout = timeout

    def _run_both(
        self, original: QueryModel, candidate: QueryModel
    ) -> tuple[LocalResult, LocalResult]:
        con = open_warehouse(self.settings)
        try:
            return (
                run_select(
                    con,
                    localize(original.original, self.schema, self.settings),
                    timeout=self.timeout,
                ),
                run_select(
                    con,
                    localize(candidate.original, self.schema, self.settings),
                    timeout=self.timeout,
                ),
            )
        finally:
            con.close()

    def verify(self, original: QueryModel, candidate_sql: str) -> Verification:
        try:
            candidate = build_model(parse_read_only(candidate_sql), self.schema)
        except Refused as refused:
            return Verification(False, f"not verified: the rewrite is refused ({refused.reason})")
        except SchemaMismatch as error:
            return Verification(False, f"not verified: {error}")
        extra = candidate.tables() - original.tables()
        if extra:
            names = ", ".join(f"{d}.{t}" for d, t in sorted(extra))
            return Verification(
                False, f"not verified: reads {names}, which the original does not", candidate
            )
        if original.original.find(*RANDOM):
            return Verification(
                False, "not verified: the original is random (RAND, GENERATE_UUID)", candidate
            )
        try:
            before, after = self._run_both(original, candidate)
        except LocalQueryError as error:
            return Verification(
                False, f"not verified: the local warehouse could not run it ({error})", candidate
            )
        if before.columns != after.columns:
            return Verification(
                False,
                f"not verified: columns {after.columns} instead of {before.columns}",
                candidate,
            )
        types_before = [bigquery_type(t) for t in before.types]
        types_after = [bigquery_type(t) for t in after.types]
        if types_before != types_after:
            return Verification(
                False,
                f"not verified: column types {types_after} instead of {types_before}",
                candidate,
            )
        if not before.rows:
            return Verification(
                False,
                "not verified: the original returns no row on the local warehouse: "
                "nothing to compare",
                candidate,
            )
        positions = order_positions(original.qualified)
        difference = compare_rows(before, after, positions)
        if difference:
            return Verification(False, f"not verified: {difference}", candidate)
        how = "in the same order" if positions or positions is None else "as a multiset"
        tables = ", ".join(f"{d}.{t}" for d, t in sorted(candidate.tables())) or "no table"
        return Verification(
            True,
            f"verified on the local DuckDB warehouse: reads only {tables}; same "
            f"{len(before.columns)} columns and types; same {len(before.rows)} rows ({how})",
            candidate,
        )
