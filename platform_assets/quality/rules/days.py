"""How the derived monitors cut a table into days, and which columns they look at.

The columns and their types come from the table itself at run time (DuckDB's DESCRIBE,
BigQuery's INFORMATION_SCHEMA), so a column or model added to the dbt project is monitored
by the next evaluation without a change in Python. The day is, in order: the column the
spec names; the table's first DATE column; its first TIMESTAMP column; else the day of the
parent row it references (a dbt `relationships` test: order lines take their order's day).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from platform_assets.quality.rules.context import RuleContext, date_literal
from platform_assets.quality.specs import DayColumn
from platform_assets.quality.warehouse import quote

DAY = "quality_day"  # the day of each row in a DayCut's relation

_NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|INT|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
    r"FLOAT|REAL|DOUBLE|DECIMAL|NUMERIC|BIGNUMERIC|INT64|FLOAT64)\b",
    re.IGNORECASE,
)
_TIMESTAMP = re.compile(r"^(TIMESTAMP|DATETIME)", re.IGNORECASE)
_DATE = re.compile(r"^DATE$", re.IGNORECASE)
_TEXT = re.compile(r"^(VARCHAR|STRING|TEXT|CHAR|BPCHAR)", re.IGNORECASE)
_BOOLEAN = re.compile(r"^(BOOLEAN|BOOL)$", re.IGNORECASE)


def is_numeric(sql_type: str) -> bool:
    return bool(_NUMERIC.match(sql_type.strip()))


_INTEGER = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|INT|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|INT64)\b",
    re.IGNORECASE,
)


def is_integer(sql_type: str) -> bool:
    return bool(_INTEGER.match(sql_type.strip()))


def is_timestamp(sql_type: str) -> bool:
    return bool(_TIMESTAMP.match(sql_type.strip()))


def is_date(sql_type: str) -> bool:
    return bool(_DATE.match(sql_type.strip()))


def is_temporal(sql_type: str) -> bool:
    return is_date(sql_type) or is_timestamp(sql_type)


def is_categorical(sql_type: str) -> bool:
    return bool(_TEXT.match(sql_type.strip()) or _BOOLEAN.match(sql_type.strip()))


def is_identifier(column: str) -> bool:
    """Ids and keys (`id`, `*_id`) are labels, not quantities: their sum or mix means
    nothing (and grows with the id sequence), so no monitor looks at them."""
    name = column.lower()
    return name == "id" or name.endswith("_id")


@dataclass(frozen=True)
class DayCut:
    """The asset's rows with their day (`quality_day`), as a SQL relation."""

    relation: str
    label: str  # what the day is, for descriptions ("created_at", "created_at of ...")
    column: str | None  # the asset's own day column, if it has one


def _own_day_column(columns: list[tuple[str, str]]) -> str | None:
    for test in (is_date, is_timestamp):
        for name, sql_type in columns:
            if test(sql_type):
                return name
    return None


def day_cut(ctx: RuleContext, spec: DayColumn, where: str | None = None) -> DayCut | None:
    """The relation that gives every row of the asset a day, or None when it has none."""
    names = {name for name, _ in ctx.columns()}
    condition = f" where {where}" if where else ""
    column = spec.column if spec.column in names else _own_day_column(ctx.columns())
    if column is not None:
        relation = (
            f"(select rows_in.*, cast(rows_in.{quote(column)} as date) as {DAY} "
            f"from {ctx.rel()} as rows_in{condition}) as rows_by_day"
        )
        return DayCut(relation, column, column)
    for link in spec.parents:
        if link.column not in names:
            continue
        parent_day = _own_day_column(ctx.columns(link.parent))
        if parent_day is None:
            continue
        relation = (
            f"(select rows_in.*, cast(parent.{quote(parent_day)} as date) as {DAY} "
            f"from {ctx.rel()} as rows_in join {ctx.rel(link.parent)} as parent "
            f"on rows_in.{quote(link.column)} = parent.{quote(link.parent_column)}"
            f"{condition}) as rows_by_day"
        )
        return DayCut(relation, f"{parent_day} of {link.parent} (by {link.column})", None)
    return None


def window(first: date, last: date) -> str:
    """The `where` clause of a day range (inclusive) on a DayCut's relation."""
    return f"{DAY} between {date_literal(first)} and {date_literal(last)}"


def monitored(
    ctx: RuleContext, kind: str, exclude: tuple[str, ...], day_column: str | None
) -> list[str]:
    """The asset's columns of `kind` (numeric, categorical, temporal) that a derived
    monitor watches: not excluded, not an id, not the day itself."""
    test = {"numeric": is_numeric, "categorical": is_categorical, "temporal": is_temporal}[kind]
    return [
        name
        for name, sql_type in ctx.columns()
        if test(sql_type)
        and name not in exclude
        and name != day_column
        and not (kind != "temporal" and is_identifier(name))
    ]
