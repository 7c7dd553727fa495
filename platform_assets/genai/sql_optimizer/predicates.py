"""What a filter does to a partitioned table: which days it keeps, and whether BigQuery can tell.

BigQuery prunes partitions only from predicates that compare the bare partition column with
constant expressions (`=`, `<`, `BETWEEN`, `IN (...)`, and ORs of those on the same column).
A function or cast around the column (`EXTRACT(YEAR FROM d) = 2026`), an OR that mixes in
another column, or a comparison with a subquery leaves every partition to be read.

Constant expressions (`'2026-11-01'`, `DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)`) are
evaluated to dates by DuckDB on an in-memory connection that can read no file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlglot
from sqlglot import exp

DIALECT = "bigquery"
COMPARISONS = (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
FLIPPED: dict[type[exp.Expression], type[exp.Expression]] = {
    exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ,
}  # fmt: skip


@dataclass(frozen=True)
class DateRange:
    """Inclusive; None is unbounded."""

    low: date | None = None
    high: date | None = None

    def intersect(self, other: DateRange) -> DateRange:
        lows = [d for d in (self.low, other.low) if d is not None]
        highs = [d for d in (self.high, other.high) if d is not None]
        return DateRange(max(lows) if lows else None, min(highs) if highs else None)

    def contains(self, day: date) -> bool:
        return (self.low is None or day >= self.low) and (self.high is None or day <= self.high)


EVERYTHING = (DateRange(),)


@dataclass
class PartitionFilter:
    """How the conjuncts on one scan restrict its partition column."""

    mentioned: bool = False  # some conjunct references the partition column
    ranges: tuple[DateRange, ...] | None = None  # union kept; None: nothing prunes
    offending: list[exp.Expression] = field(default_factory=list)  # what defeats pruning

    @property
    def prunes(self) -> bool:
        return self.ranges is not None

    def keeps(self, day: date | None) -> bool:
        if self.ranges is None or day is None:
            return True
        return any(r.contains(day) for r in self.ranges)


def conjuncts(condition: exp.Expression | None) -> list[exp.Expression]:
    if condition is None:
        return []
    return (
        [c.unnest() for c in condition.flatten()]
        if isinstance(condition, exp.And)
        else [condition.unnest()]
    )


def is_constant(node: exp.Expression) -> bool:
    """No column, subquery, aggregate or window: BigQuery can fold it before reading."""
    return not any(
        isinstance(n, exp.Column | exp.Query | exp.AggFunc | exp.Window | exp.Star)
        for n in node.walk()
    )


@functools.lru_cache(maxsize=1)
def _evaluator() -> object:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET enable_external_access = false")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET lock_configuration = true")
    return con


@functools.lru_cache(maxsize=4096)
def _evaluate_date(bigquery_sql: str) -> date | None:
    try:
        duck = sqlglot.transpile(
            f"SELECT CAST(({bigquery_sql}) AS DATE)", read=DIALECT, write="duckdb"
        )
        row = _evaluator().execute(duck[0]).fetchone()  # type: ignore[attr-defined]
    except Exception:  # not a date, not evaluable: the bound stays open
        return None
    value = row[0] if row else None
    return value if isinstance(value, date) else None


def constant_date(node: exp.Expression) -> date | None:
    """The date a constant expression evaluates to, if it is one."""
    return _evaluate_date(node.sql(DIALECT)) if is_constant(node) else None


def outer_columns(node: exp.Expression) -> list[exp.Column]:
    """Columns of `node` itself, not those inside a subquery of it."""
    inside = node.walk(prune=lambda n: isinstance(n, exp.Query) and n is not node)
    return [n for n in inside if isinstance(n, exp.Column)]


def is_column(node: exp.Expression, alias: str, name: str) -> bool:
    node = node.unnest()
    return isinstance(node, exp.Column) and node.name == name and node.table == alias


def mentions(node: exp.Expression, alias: str, name: str) -> bool:
    return any(is_column(c, alias, name) for c in outer_columns(node))


def _comparison_range(kind: type[exp.Expression], value: date | None) -> DateRange:
    if value is None:
        return DateRange()
    return {
        exp.EQ: DateRange(value, value),
        exp.GT: DateRange(value + timedelta(days=1), None),
        exp.GTE: DateRange(value, None),
        exp.LT: DateRange(None, value - timedelta(days=1)),
        exp.LTE: DateRange(None, value),
    }[kind]


def sargable_ranges(node: exp.Expression, alias: str, name: str) -> tuple[DateRange, ...] | None:
    """The days a predicate keeps when BigQuery can prune with it, else None."""
    node = node.unnest()
    if isinstance(node, COMPARISONS):
        left, right = node.this.unnest(), node.expression.unnest()
        if is_column(left, alias, name) and is_constant(right):
            return (_comparison_range(type(node), constant_date(right)),)
        if is_column(right, alias, name) and is_constant(left):
            return (_comparison_range(FLIPPED[type(node)], constant_date(left)),)
        return None
    if isinstance(node, exp.Between) and is_column(node.this, alias, name):
        low, high = node.args["low"], node.args["high"]
        if is_constant(low) and is_constant(high):
            return (DateRange(constant_date(low), constant_date(high)),)
        return None
    if isinstance(node, exp.In) and is_column(node.this, alias, name):
        values = node.expressions
        if values and not node.args.get("query") and all(is_constant(v) for v in values):
            days = [constant_date(v) for v in values]
            return tuple(DateRange(d, d) if d else DateRange() for d in days)
        return None
    if isinstance(node, exp.Not) and isinstance(node.this.unnest(), exp.Is):
        return EVERYTHING if is_column(node.this.unnest().this, alias, name) else None
    if isinstance(node, exp.Or):
        branches = [sargable_ranges(b, alias, name) for b in node.flatten()]
        if any(b is None for b in branches):
            return None
        return tuple(r for b in branches if b for r in b)
    if isinstance(node, exp.And):
        parts = [
            sargable_ranges(p, alias, name) for p in conjuncts(node) if mentions(p, alias, name)
        ]
        if not parts or any(p is None for p in parts):
            return None
        return _intersect_all(parts)  # type: ignore[arg-type]
    return None


def _intersect_all(parts: list[tuple[DateRange, ...]]) -> tuple[DateRange, ...]:
    result = parts[0]
    for part in parts[1:]:
        result = tuple(a.intersect(b) for a in result for b in part)
    return result


def partition_filter(predicates: list[exp.Expression], alias: str, name: str) -> PartitionFilter:
    """Combine a scan's conjuncts on its partition column `alias.name`."""
    result = PartitionFilter()
    kept: list[tuple[DateRange, ...]] = []
    for predicate in predicates:
        if not mentions(predicate, alias, name):
            continue
        result.mentioned = True
        ranges = sargable_ranges(predicate, alias, name)
        if ranges is None:
            result.offending.append(predicate)
        else:
            kept.append(ranges)
    if kept:
        result.ranges = _intersect_all(kept)
    return result


def prunable(node: exp.Expression, alias: str, name: str) -> bool:
    """Whether block pruning on clustering column `alias.name` can use this predicate: the
    bare column against constants (=, <, BETWEEN, IN, IS NULL, LIKE 'prefix%')."""
    node = node.unnest()
    if isinstance(node, exp.Or):
        return all(prunable(b, alias, name) for b in node.flatten() if mentions(b, alias, name))
    if isinstance(node, exp.And):
        return all(prunable(p, alias, name) for p in conjuncts(node) if mentions(p, alias, name))
    if isinstance(node, exp.Not):
        return prunable(node.this, alias, name)
    if isinstance(node, (*COMPARISONS, exp.NEQ)):
        left, right = node.this.unnest(), node.expression.unnest()
        return (is_column(left, alias, name) and is_constant(right)) or (
            is_column(right, alias, name) and is_constant(left)
        )
    if isinstance(node, exp.Between):
        bounds = (node.args["low"], node.args["high"])
        return is_column(node.this, alias, name) and all(is_constant(b) for b in bounds)
    if isinstance(node, exp.In):
        values = node.expressions
        return is_column(node.this, alias, name) and bool(values) and all(map(is_constant, values))
    if isinstance(node, exp.Is):
        return is_column(node.this, alias, name)
    if isinstance(node, exp.Like):
        pattern = node.expression
        return (
            is_column(node.this, alias, name)
            and isinstance(pattern, exp.Literal)
            and not str(pattern.this).startswith(("%", "_"))
        )
    return False
