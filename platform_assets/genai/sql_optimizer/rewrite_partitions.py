"""Rule rewrites that let BigQuery prune partitions, each an exact equivalence.

- `non_sargable_partition_filter`: a predicate that hides the partition column inside a
  function becomes the same condition on the bare column:
  `EXTRACT(YEAR FROM d) = 2026` -> `d BETWEEN '2026-01-01' AND '2026-12-31'` (with a MONTH
  sibling: that month), `DATE_TRUNC(d, MONTH) = '2026-11-01'` -> the month's range,
  `FORMAT_DATE('%Y-%m', d) = '2026-11'`, `CAST(d AS STRING) LIKE '2026-11%'` -> the month,
  `DATE(d) >= x` -> `d >= x`, `DATE_DIFF(CURRENT_DATE(), d, DAY) <= 7` ->
  `d >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)`.
- `missing_partition_filter`: where a model's partition column is the UTC date of one of its
  timestamps (`order_date = DATE(created_at)`), a filter on the timestamp implies the same
  bound on the partition column, which is added next to the table (`created_at >= x` adds
  `order_date >= DATE(x)`): rows are unchanged and the partitions outside are skipped.

Each pattern is matched twice: on the planned predicate (where columns resolve to the real
partition column, through CTE renames) and on the analyst's own predicate, which is the one
replaced, so the rewrite reads like the original.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date, timedelta

from sqlglot import exp

from platform_assets.genai.sql_optimizer.analysis import NID, QueryModel, Scan
from platform_assets.genai.sql_optimizer.predicates import (
    COMPARISONS,
    FLIPPED,
    constant_date,
    is_column,
    is_constant,
    mentions,
    partition_filter,
)

IsColumn = Callable[[exp.Expression], bool]
Pattern = Callable[[exp.Expression, IsColumn], exp.Expression | None]
TEXT_TYPES = (exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR)


def date_literal(day: date) -> exp.Expression:
    return exp.cast(exp.Literal.string(day.isoformat()), exp.DataType.build("DATE"))


def _between(column: exp.Expression, low: date, high: date) -> exp.Expression:
    return exp.Between(this=column.copy(), low=date_literal(low), high=date_literal(high))


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _int(node: exp.Expression) -> int | None:
    node = node.unnest()
    if isinstance(node, exp.Literal) and not node.is_string and str(node.this).isdigit():
        return int(node.this)
    return None


def _compare(
    kind: type[exp.Expression], column: exp.Expression, value: exp.Expression
) -> exp.Expression:
    return kind(this=column.copy(), expression=value)


def _sides(
    node: exp.Expression,
) -> tuple[type[exp.Expression], exp.Expression, exp.Expression] | None:
    """(operator, wrapped side, other side) with the other side constant, operator flipped so
    that it reads `wrapped OP other`."""
    node = node.unnest()
    if not isinstance(node, COMPARISONS):
        return None
    left, right = node.this.unnest(), node.expression.unnest()
    if is_constant(right) and not is_constant(left):
        return type(node), left, right
    if is_constant(left) and not is_constant(right):
        return FLIPPED[type(node)], right, left
    return None


def bare_date(node: exp.Expression, is_col: IsColumn) -> exp.Expression | None:
    """`DATE(d) OP x` / `CAST(d AS DATE) OP x` on a DATE column -> `d OP x`."""
    parts = _sides(node)
    if not parts:
        return None
    kind, wrapped, other = parts
    inner = wrapped.this if isinstance(wrapped, exp.Date | exp.Cast | exp.TsOrDsToDate) else None
    if isinstance(wrapped, exp.Cast) and not wrapped.to.is_type(exp.DataType.Type.DATE):
        return None
    if isinstance(wrapped, exp.Date) and wrapped.args.get("zone"):
        return None
    if inner is None or not is_col(inner):
        return None
    return _compare(kind, inner, other.copy())


def _year_range(kind: type[exp.Expression], column: exp.Expression, year: int) -> exp.Expression:
    if kind is exp.EQ:
        return _between(column, date(year, 1, 1), date(year, 12, 31))
    bound = {
        exp.GTE: (exp.GTE, date(year, 1, 1)), exp.GT: (exp.GTE, date(year + 1, 1, 1)),
        exp.LT: (exp.LT, date(year, 1, 1)), exp.LTE: (exp.LTE, date(year, 12, 31)),
    }[kind]  # fmt: skip
    return _compare(bound[0], column, date_literal(bound[1]))


def extract_year(node: exp.Expression, is_col: IsColumn) -> exp.Expression | None:
    """`EXTRACT(YEAR FROM d) OP 2026` -> a range of d."""
    parts = _sides(node)
    if not parts:
        return None
    kind, wrapped, other = parts
    if not isinstance(wrapped, exp.Extract) or wrapped.this.name.upper() != "YEAR":
        return None
    year = _int(other)
    if year is None or not is_col(wrapped.expression):
        return None
    return _year_range(kind, wrapped.expression, year)


def _period(unit: str, start: date) -> date | None:
    """Last day of the period `unit` starting at `start`, if `start` starts one."""
    if unit == "DAY":
        return start
    if unit in ("WEEK(MONDAY)", "ISOWEEK") and start.weekday() == 0:
        return start + timedelta(days=6)
    if unit in ("WEEK", "WEEK(SUNDAY)") and start.weekday() == 6:
        return start + timedelta(days=6)
    if start.day != 1:
        return None
    if unit == "MONTH":
        return _month_end(start.year, start.month)
    if unit == "QUARTER" and start.month in (1, 4, 7, 10):
        return _month_end(start.year, start.month + 2)
    if unit == "YEAR" and start.month == 1:
        return date(start.year, 12, 31)
    return None


def _trunc_unit(trunc: exp.DateTrunc) -> str:
    unit = trunc.args.get("unit")
    if isinstance(unit, exp.WeekStart):
        return f"WEEK({unit.this.name.upper()})"
    return unit.name.upper() if unit is not None else ""


def date_trunc(node: exp.Expression, is_col: IsColumn) -> exp.Expression | None:
    """`DATE_TRUNC(d, MONTH) OP '2026-11-01'` (a period start) -> a range of d."""
    parts = _sides(node)
    if not parts:
        return None
    kind, wrapped, other = parts
    if not isinstance(wrapped, exp.DateTrunc) or not is_col(wrapped.this):
        return None
    unit, start = _trunc_unit(wrapped), constant_date(other)
    end = _period(unit, start) if start else None
    if start is None or end is None:
        return None
    column = wrapped.this
    return {
        exp.EQ: lambda: _between(column, start, end),
        exp.GTE: lambda: _compare(exp.GTE, column, date_literal(start)),
        exp.GT: lambda: _compare(exp.GT, column, date_literal(end)),
        exp.LT: lambda: _compare(exp.LT, column, date_literal(start)),
        exp.LTE: lambda: _compare(exp.LTE, column, date_literal(end)),
    }[kind]()


def _prefix_range(column: exp.Expression, prefix: str) -> exp.Expression | None:
    """A date text prefix ('2026', '2026-11', '2026-11-20') as a range of days."""
    try:
        if len(prefix) == 4:
            return _between(column, date(int(prefix), 1, 1), date(int(prefix), 12, 31))
        if len(prefix) == 7 and prefix[4] == "-":
            year, month = int(prefix[:4]), int(prefix[5:])
            return _between(column, date(year, month, 1), _month_end(year, month))
        if len(prefix) == 10:
            return _compare(exp.EQ, column, date_literal(date.fromisoformat(prefix)))
    except ValueError:
        return None
    return None


FORMATS = {"%Y": 4, "%Y-%m": 7, "%Y-%m-%d": 10, "%F": 10}


def date_text(node: exp.Expression, is_col: IsColumn) -> exp.Expression | None:
    """`FORMAT_DATE('%Y-%m', d) = '2026-11'`, `CAST(d AS STRING) LIKE '2026-11%'` -> a range."""
    node = node.unnest()
    if not isinstance(node, exp.EQ | exp.Like):
        return None
    wrapped, text = node.this.unnest(), node.expression.unnest()
    if not (isinstance(text, exp.Literal) and text.is_string):
        return None
    value = str(text.this)
    if isinstance(node, exp.Like):
        if not value.endswith("%") or "%" in value[:-1] or "_" in value:
            return None
        value = value[:-1]
    if isinstance(wrapped, exp.TimeToStr):
        column, width = wrapped.this, FORMATS.get(str(wrapped.args["format"].this))
        if isinstance(column, exp.TsOrDsToDate):
            column = column.this
        if width is None or (isinstance(node, exp.EQ) and len(value) != width):
            return None
    elif isinstance(wrapped, exp.Cast) and wrapped.to.this in TEXT_TYPES:
        column = wrapped.this
    else:
        return None
    return _prefix_range(column, value) if is_col(column) else None


def date_diff(node: exp.Expression, is_col: IsColumn) -> exp.Expression | None:
    """`DATE_DIFF(x, d, DAY) <= 7` -> `d >= DATE_SUB(x, INTERVAL 7 DAY)` (and mirrored)."""
    parts = _sides(node)
    if not parts:
        return None
    kind, wrapped, other = parts
    days = _int(other)
    if not isinstance(wrapped, exp.DateDiff) or days is None:
        return None
    if (wrapped.unit.name if wrapped.args.get("unit") else "DAY").upper() != "DAY":
        return None
    later, earlier = wrapped.this, wrapped.expression
    interval = {"expression": exp.Literal.number(days), "unit": exp.var("DAY")}
    if is_col(earlier) and is_constant(later):  # later - d OP n  <=>  d FLIP(OP) later - n
        return _compare(FLIPPED[kind], earlier, exp.DateSub(this=later.copy(), **interval))
    if is_col(later) and is_constant(earlier):  # d - earlier OP n  <=>  d OP earlier + n
        return _compare(kind, later, exp.DateAdd(this=earlier.copy(), **interval))
    return None


PATTERNS: tuple[Pattern, ...] = (bare_date, extract_year, date_trunc, date_text, date_diff)


def _any_column(node: exp.Expression) -> bool:
    return isinstance(node.unnest(), exp.Column)


def _and_chain(node: exp.Expression) -> list[exp.Expression]:
    top = node
    while isinstance(top.parent, exp.And | exp.Paren):
        top = top.parent
    return top.flatten() if isinstance(top, exp.And) else [node]  # type: ignore[return-value]


def _month_sibling(original: exp.Expression) -> exp.Expression | None:
    """`EXTRACT(YEAR FROM d) = y AND EXTRACT(MONTH FROM d) = m` -> that month's range."""
    parts = _sides(original)
    if not parts or parts[0] is not exp.EQ:
        return None
    _, extract, other = parts
    year, column = _int(other), extract.expression
    for sibling in _and_chain(original):
        node = sibling.unnest()
        if sibling is original or not isinstance(node, exp.EQ):
            continue
        month = _int(node.expression)
        inner = node.this
        if (
            isinstance(inner, exp.Extract)
            and inner.this.name.upper() == "MONTH"
            and inner.expression == column
            and year is not None
            and month in range(1, 13)
        ):
            sibling.replace(exp.true())
            return _between(column, date(year, month, 1), _month_end(year, month))  # type: ignore[arg-type]
    return None


def drop_true(tree: exp.Expression) -> None:
    """Tidy `x AND TRUE` left where a predicate was folded into another."""
    for node in list(tree.find_all(exp.And)):
        left, right = node.this, node.expression
        if isinstance(right, exp.Boolean) and right.this:
            node.replace(left)
        elif isinstance(left, exp.Boolean) and left.this:
            node.replace(right)


def rewrite_partition_functions(model: QueryModel) -> bool:
    """non_sargable_partition_filter: unwrap the partition column where it is exact."""
    changed = False
    for scan in model.scans:
        column = scan.table.partition_column
        if not column:
            continue
        is_partition = lambda n, s=scan, c=column: is_column(n, s.alias, c)  # noqa: E731
        for planned in partition_filter(scan.predicates, scan.alias, column).offending:
            original = model.node(planned.meta.get(NID))
            if original is None:
                continue
            for pattern in PATTERNS:
                if pattern(planned, is_partition) is None:
                    continue
                replacement = pattern(original, _any_column)
                if replacement is None:
                    continue
                if pattern is extract_year:
                    replacement = _month_sibling(original) or replacement
                original.replace(
                    exp.paren(replacement)
                    if isinstance(original.parent, exp.Binary)
                    else replacement
                )
                changed = True
                break
    drop_true(model.original)
    return changed


def _timestamp_bounds(
    scan: Scan, derived: str
) -> tuple[exp.Expression | None, exp.Expression | None] | None:
    """Bounds on the partition column implied by this scan's filters on `derived`."""
    low: exp.Expression | None = None
    high: exp.Expression | None = None
    for predicate in scan.predicates:
        if not mentions(predicate, scan.alias, derived):
            continue
        node = predicate.unnest()
        if isinstance(node, exp.Between) and is_column(node.this, scan.alias, derived):
            if is_constant(node.args["low"]) and is_constant(node.args["high"]):
                low, high = _day_of(node.args["low"]), _day_of(node.args["high"])
            continue
        parts = _sides(node)
        if parts is None or not is_column(parts[1], scan.alias, derived):
            continue
        kind, _, bound = parts
        if kind in (exp.GT, exp.GTE, exp.EQ):
            low = _day_of(bound)
        if kind in (exp.LT, exp.LTE, exp.EQ):
            high = _day_of(bound)
    return (low, high) if low is not None or high is not None else None


def _day_of(bound: exp.Expression) -> exp.Expression:
    """The UTC date of a timestamp bound: a literal when it is one, else DATE(bound)."""
    if isinstance(bound, exp.Literal) and bound.is_string:
        day = constant_date(bound)
        if day is not None:
            return date_literal(day)
    return exp.Date(this=bound.copy())


def _hull(
    bounds: list[tuple[exp.Expression | None, exp.Expression | None]],
    side: int,
    fn: type[exp.Expression],
) -> exp.Expression | None:
    values = [b[side] for b in bounds]
    if any(v is None for v in values):
        return None  # one read has no bound on this side: neither may the filter
    unique = {v.sql(): v for v in values if v is not None}
    if len(unique) == 1:
        return next(iter(unique.values())).copy()
    return fn(this=values[0].copy(), expressions=[v.copy() for v in values[1:]])  # type: ignore[union-attr]


def _attach(table: exp.Table, condition: exp.Expression) -> bool:
    """AND a filter on `table` where it applies only to that table's rows."""
    parent = table.parent
    if isinstance(parent, exp.Join):
        if parent.side in ("RIGHT", "FULL") or parent.kind == "CROSS" or not parent.args.get("on"):
            return False
        if parent.side == "LEFT":
            parent.set("on", exp.and_(parent.args["on"], condition))
            return True
    select = table.parent_select
    if not isinstance(select, exp.Select):
        return False
    select.where(condition, copy=False)
    return True


def rewrite_derived_partition(model: QueryModel) -> bool:
    """missing_partition_filter: add the partition bound a timestamp filter implies."""
    changed = False
    by_reference: dict[int | None, list[Scan]] = {}
    for scan in model.scans:
        if scan.table.partition_column and scan.table.derived_partition:
            by_reference.setdefault(scan.nid, []).append(scan)
    for nid, scans in by_reference.items():
        table = model.node(nid)
        column = scans[0].table.partition_column or ""
        if not isinstance(table, exp.Table) or any(
            partition_filter(s.predicates, s.alias, column).mentioned for s in scans
        ):
            continue
        bounds = [_timestamp_bounds(s, scans[0].table.derived_partition or "") for s in scans]
        if any(b is None for b in bounds):
            continue
        low = _hull(bounds, 0, exp.Least)  # type: ignore[arg-type]
        high = _hull(bounds, 1, exp.Greatest)  # type: ignore[arg-type]
        target = exp.column(column, table=table.alias_or_name)
        parts = [exp.GTE(this=target.copy(), expression=low)] if low is not None else []
        parts += [exp.LTE(this=target.copy(), expression=high)] if high is not None else []
        if parts and _attach(table, exp.and_(*parts) if len(parts) > 1 else parts[0]):
            changed = True
    return changed
