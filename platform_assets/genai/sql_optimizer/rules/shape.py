"""Rules on the shape of a query: what it returns, sorts, counts, joins and calls."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from platform_assets.genai.sql_optimizer.analysis import QueryModel
from platform_assets.genai.sql_optimizer.predicates import conjuncts, outer_columns
from platform_assets.genai.sql_optimizer.report import Finding
from platform_assets.genai.sql_optimizer.rules.base import finding, quote, source_line

NONDETERMINISTIC: dict[type[exp.Expression], str] = {
    exp.CurrentDate: "CURRENT_DATE()", exp.CurrentTimestamp: "CURRENT_TIMESTAMP()",
    exp.CurrentDatetime: "CURRENT_DATETIME()", exp.CurrentTime: "CURRENT_TIME()",
    exp.Rand: "RAND()", exp.Uuid: "GENERATE_UUID()", exp.SessionUser: "SESSION_USER()",
}  # fmt: skip


def _output_selects(tree: exp.Expression) -> list[exp.Select]:
    """The SELECTs whose rows the query returns (each branch of a top-level UNION)."""
    tree = tree.unnest()
    if isinstance(tree, exp.SetOperation):
        return _output_selects(tree.left) + _output_selects(tree.right)
    return [tree] if isinstance(tree, exp.Select) else []


def _is_bare_star(projection: exp.Expression) -> bool:
    star = projection if isinstance(projection, exp.Star) else None
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        star = projection.this  # t.*
    if star is None:
        return False
    return not (star.args.get("except_") or star.args.get("replace"))


def select_star(model: QueryModel) -> list[Finding]:
    """The result carries every column of what it reads: BigQuery bills every one."""
    findings = []
    outputs = _output_selects(model.qualified)
    for index, select in enumerate(_output_selects(model.original)):
        if not any(_is_bare_star(p) for p in select.expressions):
            continue
        count = len(outputs[index].expressions) if index < len(outputs) else 0
        limit = " LIMIT does not reduce the bytes read." if select.args.get("limit") else ""
        sources = ", ".join(
            f"`{quote(t)}`" for t in select.find_all(exp.Table) if t.parent_select is select
        )
        findings.append(
            finding(
                "select_star",
                source_line(model, select.args.get("from_")),
                f"`SELECT *` returns all {count} columns of {sources or 'its sources'}; BigQuery "
                f"bills every column a query reads, used or not.{limit}",
                "List only the columns you need (or `SELECT * EXCEPT (...)` the wide ones); "
                "to look at data, use the table preview, which is free.",
            )
        )
    return findings


def _aggregates(select: exp.Select) -> bool:
    return bool(select.args.get("group")) or any(
        p.find(exp.AggFunc) and not p.find(exp.Window) for p in select.expressions
    )


def _feeds_array(query: exp.Expression) -> bool:
    """`ARRAY(SELECT ... ORDER BY ...)` keeps its order: that sort is meaningful."""
    parent = query.parent
    while isinstance(parent, exp.Subquery | exp.Paren):
        parent = parent.parent
    return isinstance(parent, exp.Array)


def order_by_without_limit(model: QueryModel) -> list[Finding]:
    """A sort of a whole result on one worker, or a sort BigQuery throws away."""
    findings = []
    root = model.original.unnest()
    for query in model.original.find_all(exp.Select, exp.SetOperation):
        order = query.args.get("order")
        if order is None or query.args.get("limit") or _feeds_array(query):
            continue
        if query is root:
            if isinstance(query, exp.Select) and _aggregates(query):
                continue  # an aggregated result is usually small: sorting it is cheap
            message = (
                f"`{quote(order)}` sorts the whole result without a LIMIT: BigQuery does the "
                "final sort on a single worker, which is slow and can exceed its resources."
            )
            fix = (
                "Add a LIMIT if you need the top rows, or leave the sorting to the tool reading it."
            )
        else:
            message = (
                f"`{quote(order)}` sorts a subquery or CTE without a LIMIT: the order is not "
                "kept by what reads it, so the sort is wasted work."
            )
            fix = "Remove this ORDER BY; sort once, in the outermost query."
        findings.append(finding("order_by_without_limit", source_line(model, order), message, fix))
    return findings


def count_distinct(model: QueryModel) -> list[Finding]:
    """Exact distinct counts, where an approximation may do (an option, not an error)."""
    findings = []
    for count in model.original.find_all(exp.Count):
        if not isinstance(count.this, exp.Distinct):
            continue
        argument = quote(count.this.expressions[0]) if count.this.expressions else "..."
        findings.append(
            finding(
                "count_distinct",
                source_line(model, count),
                f"`{quote(count)}` is exact: every distinct value is shuffled to be counted. "
                "If an estimate will do (dashboards, trends), an approximation is much cheaper. "
                "This is an option, not an error.",
                f"Keep it where the exact figure matters; otherwise `APPROX_COUNT_DISTINCT("
                f"{argument})` (HyperLogLog++, typically within 1%).",
            )
        )
    return findings


def nondeterministic(model: QueryModel) -> list[Finding]:
    """Functions whose results change between runs: BigQuery never caches such a query."""
    findings = []
    seen: set[str] = set()
    for node in model.original.walk():
        name = NONDETERMINISTIC.get(type(node))
        if name is None or name in seen:
            continue
        seen.add(name)
        findings.append(
            finding(
                "nondeterministic",
                source_line(model, node),
                f"`{name}` makes the result depend on when it runs, so BigQuery never serves "
                "this query from its cache (cached results are free and instant).",
                "Compute the value in the caller and pass it as a query parameter or literal "
                "(`@run_date`, `DATE '2026-11-20'`); keep RAND() and GENERATE_UUID() out of "
                "queries that run repeatedly.",
            )
        )
    return findings


def _single_row(source: object) -> bool:
    """A derived table known to hold at most one row."""
    if not isinstance(source, Scope) or not isinstance(source.expression, exp.Select):
        return False
    select = source.expression
    limit = select.args.get("limit")
    if (
        limit is not None
        and isinstance(limit.expression, exp.Literal)
        and limit.expression.this == "1"
    ):
        return True
    if not select.args.get("from_"):
        return True
    return not select.args.get("group") and all(
        p.find(exp.AggFunc) and not p.find(exp.Window) for p in select.expressions
    )


def _linked_in_where(select: exp.Select, alias: str) -> bool:
    """A comma join whose WHERE relates the two sides is an inner join, not a cross join."""
    where = select.args.get("where")
    for condition in conjuncts(where.this if where else None):
        tables = {c.table for c in outer_columns(condition)}
        if isinstance(condition, exp.EQ) and alias in tables and len(tables) > 1:
            return True
    return False


def cross_join(model: QueryModel) -> list[Finding]:
    """Every row paired with every row, between relations of more than one row."""
    findings = []
    for scope in traverse_scope(model.qualified):
        select = scope.expression
        if not isinstance(select, exp.Select):
            continue
        from_ = select.args.get("from_")
        first = from_.this.alias_or_name if from_ else ""
        for join in select.args.get("joins") or []:
            target = join.this
            if isinstance(target, exp.Unnest) or join.args.get("on") or join.args.get("using"):
                continue
            if join.kind not in ("CROSS", None, "") or join.side:
                continue
            alias = target.alias_or_name
            if _single_row(scope.sources.get(alias)) or _single_row(scope.sources.get(first)):
                continue
            if _linked_in_where(select, alias):
                continue
            findings.append(
                finding(
                    "cross_join",
                    source_line(model, join),
                    f"`{quote(join, model)}` pairs every row of `{first}` with every row of "
                    f"`{alias}`: the result has rows({first}) x rows({alias}) rows.",
                    "Join on the key that relates them (`JOIN ... ON ...`), or reduce one side "
                    "to a single row (an aggregate without GROUP BY) before joining.",
                )
            )
    return findings
