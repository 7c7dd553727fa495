"""Rule rewrites for `repeated_scan`: read a table once where the query reads it several times.

- Scalar subqueries of one table (`SELECT (SELECT COUNT(*) FROM t WHERE a) AS x, (SELECT
  SUM(v) FROM t WHERE b) AS y`) become conditional aggregates of a single scan:
  `SELECT COUNTIF(a) AS x, SUM(IF(b, v, NULL)) AS y FROM t WHERE a OR b`. Each aggregate sees
  exactly the rows its WHERE kept (IF(...) is NULL elsewhere, which aggregates skip; an
  empty set still gives 0 for counts and NULL for the rest), and the scan keeps only the rows
  some subquery needed, so partition pruning still applies.
- A grand total cross-joined to the groups it sums (`groups AS (... GROUP BY k), totals AS
  (SELECT COUNT(*) AS n, SUM(v) AS s FROM same source) ... FROM groups CROSS JOIN totals`)
  becomes a window over the groups: `SUM(groups.n_per_group) OVER ()`. The total of COUNT,
  SUM, MIN or MAX over all rows equals that aggregate of the per-group results.
"""

from __future__ import annotations

from sqlglot import exp

from platform_assets.genai.sql_optimizer.analysis import QueryModel

CONDITIONAL = (exp.Sum, exp.Avg, exp.Min, exp.Max, exp.LogicalOr, exp.LogicalAnd, exp.Count)
REAGGREGATE: dict[type[exp.Expression], type[exp.Expression]] = {
    exp.Count: exp.Sum, exp.Sum: exp.Sum, exp.Min: exp.Min, exp.Max: exp.Max,
}  # fmt: skip


def _scalar_subquery(projection: exp.Expression) -> exp.Select | None:
    node = projection.unalias()
    if not isinstance(node, exp.Subquery) or not isinstance(node.this, exp.Select):
        return None
    select = node.this
    simple = (
        len(select.expressions) == 1
        and isinstance(select.args.get("from_"), exp.From)
        and isinstance(select.args["from_"].this, exp.Table)
        and not any(
            select.args.get(k)
            for k in ("joins", "group", "having", "order", "limit", "distinct", "qualify", "with_")
        )
        and select.expressions[0].find(exp.AggFunc) is not None
        and select.find(exp.Window) is None
    )
    where = select.args.get("where")
    return select if simple and not (where and where.find(exp.Query)) else None


def _conditional(aggregate: exp.Expression, condition: exp.Expression) -> exp.Expression | None:
    """`AGG(x)` restricted to the rows where `condition` holds."""
    if isinstance(aggregate, exp.CountIf):
        return exp.CountIf(
            this=exp.and_(exp.paren(condition.copy()), exp.paren(aggregate.this.copy()))
        )
    if isinstance(aggregate, exp.Count) and isinstance(aggregate.this, exp.Star):
        return exp.CountIf(this=condition.copy())
    if not isinstance(aggregate, CONDITIONAL):
        return None
    argument = aggregate.this
    distinct = isinstance(argument, exp.Distinct)
    if distinct:
        if len(argument.expressions) != 1:
            return None
        argument = argument.expressions[0]
    guarded = exp.If(this=condition.copy(), true=argument.copy(), false=exp.null())
    rebuilt = aggregate.copy()
    rebuilt.set("this", exp.Distinct(expressions=[guarded]) if distinct else guarded)
    return rebuilt


def _restrict(
    projection: exp.Expression, condition: exp.Expression | None
) -> exp.Expression | None:
    if condition is None:
        return projection.copy()
    result = projection.copy()
    if isinstance(result, exp.AggFunc):
        return _conditional(result, condition)
    for aggregate in list(result.find_all(exp.AggFunc)):
        if aggregate.find_ancestor(exp.AggFunc) is not None:
            return None  # nested aggregates: leave them alone
        replacement = _conditional(aggregate, condition)
        if replacement is None:
            return None
        aggregate.replace(replacement)
    return result


def rewrite_scalar_subqueries(model: QueryModel) -> bool:
    """repeated_scan: one scan instead of one per scalar subquery of the same table."""
    root = model.original
    if not isinstance(root, exp.Select) or root.args.get("from_") or root.args.get("where"):
        return False
    subqueries = [_scalar_subquery(p) for p in root.expressions]
    if len(subqueries) < 2 or any(s is None for s in subqueries):
        return False
    sources = {s.args["from_"].sql("bigquery") for s in subqueries}  # type: ignore[union-attr]
    if len(sources) != 1:
        return False
    projections = []
    conditions = []
    for projection, select in zip(root.expressions, subqueries, strict=True):
        where = select.args.get("where")  # type: ignore[union-attr]
        condition = where.this if where else None
        restricted = _restrict(select.expressions[0].unalias(), condition)  # type: ignore[union-attr]
        if restricted is None:
            return False
        projections.append(exp.alias_(restricted, projection.alias_or_name))
        conditions.append(condition)
    root.set("expressions", projections)
    root.set("from_", subqueries[0].args["from_"].copy())  # type: ignore[union-attr]
    if all(c is not None for c in conditions):
        root.where(exp.or_(*[exp.paren(c.copy()) for c in conditions]), copy=False)  # type: ignore[union-attr]
    return True


def _ctes(root: exp.Expression) -> dict[str, exp.Select]:
    with_ = root.args.get("with_")
    return {c.alias: c.this for c in with_.expressions} if with_ else {}


def _grand_total(totals: exp.Select, groups: exp.Select) -> dict[str, exp.Expression] | None:
    """For each output of `totals`, the window over `groups` outputs that equals it."""
    same_source = (
        groups.args.get("from_") == totals.args.get("from_")
        and groups.args.get("where") == totals.args.get("where")
        and not groups.args.get("joins") and not totals.args.get("joins")
        and not groups.args.get("having") and groups.args.get("group")
        and not any(totals.args.get(k) for k in ("group", "having", "distinct", "limit"))
    )  # fmt: skip
    if not same_source:
        return None
    per_group = {p.unalias(): p.alias_or_name for p in groups.expressions}
    windows: dict[str, exp.Expression] = {}
    for projection in totals.expressions:
        aggregate = projection.unalias()
        outer = REAGGREGATE.get(type(aggregate))
        name = per_group.get(aggregate)
        if outer is None or name is None or isinstance(aggregate.this, exp.Distinct):
            return None
        windows[projection.alias_or_name] = exp.Window(
            this=outer(this=exp.column(name)), over="OVER"
        )
    return windows


def rewrite_grand_total(model: QueryModel) -> bool:
    """repeated_scan: `groups CROSS JOIN totals` -> window totals over the groups."""
    root = model.original
    if (
        not isinstance(root, exp.Select)
        or root.args.get("group")
        or len(root.args.get("joins") or []) != 1
    ):
        return False
    join = root.args["joins"][0]
    from_ = root.args.get("from_")
    if join.kind != "CROSS" or not from_ or not isinstance(from_.this, exp.Table):
        return False
    ctes = _ctes(root)
    groups_name, totals_name = from_.this.name, join.this.name
    if groups_name not in ctes or totals_name not in ctes or join.this.alias:
        return False
    windows = _grand_total(ctes[totals_name], ctes[groups_name])
    if windows is None:
        return False
    uses = [c for c in root.find_all(exp.Column) if c.table == totals_name]
    elsewhere = [t for c in ctes.values() for t in c.find_all(exp.Table) if t.name == totals_name]
    if elsewhere or any(
        c.find_ancestor(exp.Order, exp.Where) or c.name not in windows for c in uses
    ):
        return False  # a total used to sort, to filter or by another CTE: leave it as written
    for column in uses:
        window = windows[column.name].copy()
        window.this.this.set("table", exp.to_identifier(from_.this.alias_or_name))
        column.replace(window)
    root.set("joins", None)
    with_ = root.args["with_"]
    with_.set("expressions", [c for c in with_.expressions if c.alias != totals_name])
    return True
