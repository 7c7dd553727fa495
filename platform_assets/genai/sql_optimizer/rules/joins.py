"""Rules on how often and how a query reads its tables: repeated scans, fan-out joins, IN."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from platform_assets.genai.sql_optimizer.analysis import QueryModel
from platform_assets.genai.sql_optimizer.predicates import conjuncts
from platform_assets.genai.sql_optimizer.report import Finding
from platform_assets.genai.sql_optimizer.rules.base import (
    finding,
    per_reference,
    quote,
    scan_line,
    source_line,
)
from platform_assets.genai.sql_optimizer.schema import TableInfo

Lookup = Callable[[exp.Table], TableInfo | None]

# aggregates whose result changes when their input rows are duplicated by a join
FAN_OUT_SENSITIVE = (exp.Sum, exp.Avg, exp.Count, exp.CountIf, exp.ArrayAgg, exp.GroupConcat)


def repeated_scan(model: QueryModel) -> list[Finding]:
    """The same table scanned several times where one scan would do."""
    findings = []
    counts = Counter(scan.table.key for scan in model.scans)
    for key, count in sorted(counts.items()):
        if count < 2:
            continue
        scans = [s for s in model.scans if s.table.key == key]
        references = per_reference(scans)
        via_cte = (
            " (a CTE referenced more than once: BigQuery evaluates a CTE at every reference, "
            "it does not keep its result)"
            if len(references) < count
            else ""
        )
        findings.append(
            finding(
                "repeated_scan",
                scan_line(model, scans[0]),
                f"`{scans[0].table.ref}` is scanned {count} times{via_cte}; each scan is billed.",
                "Read it once: compute the variants from one scan with conditional aggregation "
                "(`COUNTIF(...)`, `SUM(IF(..., x, NULL))`) or window functions (`SUM(x) OVER ()` "
                "for totals, `LAG()` instead of a self-join).",
            )
        )
    return findings


def unique_keys(source: object, lookup: Lookup) -> list[frozenset[str]]:
    """Column sets known to be unique in a source (the empty set: at most one row). Tables:
    their dbt `unique` tests; derived tables: GROUP BY keys, DISTINCT, a single aggregate
    row, or the unique columns of the one table they project."""
    if isinstance(source, exp.Table):
        info = lookup(source)
        return [frozenset([c]) for c in sorted(info.unique_columns)] if info else []
    if not isinstance(source, Scope) or not isinstance(source.expression, exp.Select):
        return []
    select = source.expression
    outputs = {p.alias_or_name: p.unalias() for p in select.expressions}
    group = select.args.get("group")
    if group:
        keys = frozenset(name for name, expr in outputs.items() if expr in group.expressions)
        return [keys] if len(keys) == len(group.expressions) else []
    if select.args.get("distinct"):
        return [frozenset(outputs)]
    if all(p.find(exp.AggFunc) and not p.find(exp.Window) for p in select.expressions):
        return [frozenset()]
    if select.args.get("joins") or len(source.sources) != 1:
        return []
    inner_alias, inner = next(iter(source.sources.items()))
    renamed = {
        e.name: n
        for n, e in outputs.items()
        if isinstance(e, exp.Column) and e.table == inner_alias
    }
    return [
        frozenset(renamed[c] for c in key)
        for key in unique_keys(inner, lookup)
        if all(c in renamed for c in key)
    ]


def _join_keys(join: exp.Join, left: set[str], right: str) -> tuple[dict[str, set[str]], set[str]]:
    """Equality keys of a join: per left source, its columns; and the right source's columns."""
    left_keys: dict[str, set[str]] = {}
    right_keys: set[str] = set()
    for condition in conjuncts(join.args.get("on")):
        if not isinstance(condition, exp.EQ):
            continue
        a, b = condition.this, condition.expression
        if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
            continue
        if a.table == right:
            a, b = b, a
        if b.table == right and a.table in left:
            left_keys.setdefault(a.table, set()).add(a.name)
            right_keys.add(b.name)
    return left_keys, right_keys


def _is_unique(keys: set[str], unique: list[frozenset[str]]) -> bool:
    return bool(keys) and any(u <= keys for u in unique)


def _sensitive_aggregates(select: exp.Select, alias: str) -> list[exp.Expression]:
    found = []
    for agg in select.find_all(*FAN_OUT_SENSITIVE):
        if agg.find_ancestor(exp.Window) or isinstance(agg.this, exp.Distinct):
            continue
        if any(c.table == alias for c in agg.find_all(exp.Column)):
            found.append(agg)
    return found


def join_before_aggregate(model: QueryModel) -> list[Finding]:
    """A join that multiplies rows before a GROUP BY that could aggregate first."""
    findings = []
    for scope in traverse_scope(model.qualified):
        select = scope.expression
        if not isinstance(select, exp.Select) or not (
            select.args.get("group") or any(p.find(exp.AggFunc) for p in select.expressions)
        ):
            continue
        from_ = select.args.get("from_")
        seen = {from_.this.alias_or_name} if from_ else set()
        for join in select.args.get("joins") or []:
            right = join.this.alias_or_name
            left_keys, right_keys = _join_keys(join, seen, right)
            seen.add(right)
            if not left_keys:
                continue
            lookup = model.schema.lookup
            right_unique = _is_unique(right_keys, unique_keys(scope.sources.get(right), lookup))
            for left, keys in sorted(left_keys.items()):
                left_unique = _is_unique(keys, unique_keys(scope.sources.get(left), lookup))
                message = _fan_out(model, select, left, right, (left_unique, right_unique))
                if message:
                    findings.append(
                        finding(
                            "join_before_aggregate",
                            source_line(model, join),
                            f"`{quote(join, model)}` {message}",
                            f"Aggregate the many side to one row per join key first (a CTE with "
                            f"`GROUP BY {', '.join(sorted(right_keys))}`), then join the result.",
                        )
                    )
    return findings


def _fan_out(
    model: QueryModel, select: exp.Select, left: str, right: str, pairs: tuple[bool, bool]
) -> str | None:
    left_unique, right_unique = pairs
    if not left_unique and not right_unique:
        return (
            f"matches many rows on both sides (`{left}` and `{right}` keys repeat): every pair "
            "is built before the GROUP BY folds them back."
        )
    for multiplied, partner_unique in ((left, right_unique), (right, left_unique)):
        if partner_unique:
            continue
        sensitive = _sensitive_aggregates(select, multiplied)
        if sensitive:
            return (
                f"repeats each row of `{multiplied}` once per match before the GROUP BY, so "
                f"`{quote(sensitive[0], model)}` counts it several times and the join carries more "
                "rows than needed."
            )
    return None


def _reduced(select: exp.Select) -> bool:
    return bool(select.args.get("distinct") or select.args.get("group") or select.args.get("limit"))


def large_in_subquery(model: QueryModel) -> list[Finding]:
    """`x IN (SELECT ...)` over a large table where a semi-join is meant; NOT IN's NULL trap."""
    findings = []
    for scope in traverse_scope(model.qualified):
        if not scope.is_subquery or not isinstance(scope.expression, exp.Select):
            continue
        subquery = scope.expression
        in_ = subquery.parent.parent if subquery.parent else None
        if not isinstance(in_, exp.In) or in_.args.get("query") is not subquery.parent:
            continue
        negated = isinstance(in_.parent, exp.Not)
        tables = [s for s in scope.sources.values() if isinstance(s, exp.Table)]
        infos = [model.schema.lookup(t) for t in tables]
        selected = subquery.expressions[0].unalias() if subquery.expressions else None
        column = selected.name if isinstance(selected, exp.Column) else ""
        large = [i for i in infos if i and i.partition_column and column not in i.unique_columns]
        if not negated and (not large or _reduced(subquery)):
            continue
        source = large[0].ref if large else "the subquery"
        why = (
            "NOT IN returns no row at all when the subquery yields a NULL, and builds the "
            "whole value list"
            if negated
            else f"builds the list of every matching row of `{source}` (duplicates included) "
            "before filtering"
        )
        findings.append(
            finding(
                "large_in_subquery",
                source_line(model, in_),
                f"`{quote(in_.parent if negated else in_, model)}` {why}; a semi-join is what "
                "is meant.",
                "Write it as a semi-join: `WHERE EXISTS (SELECT 1 FROM ... WHERE inner.key = "
                "outer.key AND ...)` (NOT EXISTS for NOT IN), or join to a `SELECT DISTINCT key` "
                "subquery.",
            )
        )
    return findings
