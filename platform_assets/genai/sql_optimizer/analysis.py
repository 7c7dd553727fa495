"""A query as BigQuery executes it: which tables it scans, which columns, with which filters.

Three views of one query:

- `original`: as parsed. Every node carries a `nid` in its meta, so anything found in the
  other views can be traced back here, where rewrites are made (the analyst's query stays
  recognisable; only the changed predicate differs).
- `qualified`: tables and columns resolved against the warehouse schema (sqlglot's
  `qualify`), stars expanded; CTEs kept. Structural rules read this.
- `flat`: how BigQuery plans it. CTEs are inlined at every reference (BigQuery evaluates a
  CTE once per reference, it does not materialise it), projections pruned to what is used,
  and predicates pushed down to the scans (through GROUP BY keys too, as BigQuery does).
  Each base-table scan then shows the columns it reads and the filters that prune it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.pushdown_predicates import pushdown_predicates, replace_aliases
from sqlglot.optimizer.pushdown_projections import pushdown_projections
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, find_in_scope, traverse_scope

from platform_assets.genai.sql_optimizer.predicates import conjuncts, outer_columns
from platform_assets.genai.sql_optimizer.schema import TableInfo, WarehouseSchema

DIALECT = "bigquery"
NID = "nid"


class SchemaMismatch(ValueError):
    """The query names a table or column the warehouse does not have."""


@dataclass
class Scan:
    """One read of a base table, as planned."""

    table: TableInfo
    alias: str
    node: exp.Table  # in the flat view; its nid points at the table reference in `original`
    select: exp.Select
    columns: set[str]
    predicates: list[exp.Expression]  # conjuncts that filter this scan's rows

    @property
    def nid(self) -> int | None:
        return self.node.meta.get(NID)


@dataclass
class QueryModel:
    original: exp.Expression
    qualified: exp.Expression
    flat: exp.Expression
    schema: WarehouseSchema
    scans: list[Scan] = field(default_factory=list)

    def node(self, nid: int | None) -> exp.Expression | None:
        if nid is None:
            return None
        return next((n for n in self.original.walk() if n.meta.get(NID) == nid), None)

    def tables(self) -> set[tuple[str, str]]:
        return {scan.table.key for scan in self.scans}


def line_of(node: exp.Expression | None) -> int | None:
    """The first source line a node (or anything inside it) came from."""
    if node is None:
        return None
    lines = [n.meta["line"] for n in node.walk() if n.meta.get("line") is not None]
    return min(lines) if lines else None


def tag(tree: exp.Expression) -> exp.Expression:
    for number, node in enumerate(tree.walk()):
        node.meta[NID] = number
    return tree


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias for cte in tree.find_all(exp.CTE)}


def check_tables(tree: exp.Expression, schema: WarehouseSchema) -> None:
    ctes = _cte_names(tree)
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or (not table.db and table.name in ctes):
            continue
        qualified = table.copy()
        if table.db and not table.catalog:
            qualified.set("catalog", exp.to_identifier(schema.project))
        if schema.lookup(qualified) is None:
            datasets = ", ".join(sorted({t.dataset for t in schema.tables.values()}))
            raise SchemaMismatch(
                f"unknown table `{table.sql(DIALECT)}`: the warehouse has dataset.table names "
                f"in {datasets}"
            )


def qualify_query(tree: exp.Expression, schema: WarehouseSchema) -> exp.Expression:
    check_tables(tree, schema)
    try:
        return qualify(
            tree.copy(), schema=schema.mapping(), catalog=schema.project, dialect=DIALECT
        )
    except OptimizeError as error:
        raise SchemaMismatch(f"does not resolve against the warehouse schema: {error}") from None


def _next_with(tree: exp.Expression) -> exp.Query | None:
    for query in tree.find_all(exp.Query):
        with_ = query.args.get("with_")
        if with_ and not with_.recursive:
            return query
    return None


def inline_ctes(tree: exp.Expression) -> exp.Expression:
    """Every reference to a (non-recursive) CTE becomes a copy of its body, nested WITHs too."""
    while (query := _next_with(tree)) is not None:
        ctes = list(query.args["with_"].expressions)
        query.set("with_", None)
        for index, cte in enumerate(ctes):
            later = [c.this for c in ctes[index + 1 :]] + [query]
            for scope_root in later:
                for table in list(scope_root.find_all(exp.Table)):
                    if table.name == cte.alias and not table.db:
                        alias = table.args.get("alias") or exp.TableAlias(
                            this=exp.to_identifier(cte.alias)
                        )
                        table.replace(exp.Subquery(this=cte.this.copy(), alias=alias.copy()))
    return tree


def _group_keys(select: exp.Select) -> set[exp.Expression]:
    group = select.args.get("group")
    return set(group.expressions) if group else set()


def push_group_key_predicates(tree: exp.Expression) -> bool:
    """Move a filter on an aggregated subquery's GROUP BY keys below the aggregation."""
    moved = False
    for scope in traverse_scope(tree):
        where = (
            scope.expression.args.get("where") if isinstance(scope.expression, exp.Select) else None
        )
        for predicate in conjuncts(where.this if where else None):
            tables = {c.table for c in predicate.find_all(exp.Column)}
            if len(tables) != 1 or predicate.find(exp.Query):
                continue
            source = scope.sources.get(tables.pop())
            if not isinstance(source, Scope) or not isinstance(source.expression, exp.Select):
                continue
            inner = source.expression
            keys = _group_keys(inner)
            outputs = {s.alias_or_name: s.unalias() for s in inner.selects}
            used = [outputs.get(c.name) for c in predicate.find_all(exp.Column)]
            if not keys or any(u is None or u not in keys for u in used):
                continue
            if any(find_in_scope(s, exp.Window) for s in inner.selects) or inner.args.get("limit"):
                continue
            inner.where(replace_aliases(inner, predicate.copy()), copy=False)
            predicate.replace(exp.true())
            moved = True
    return moved


def flatten(qualified: exp.Expression) -> exp.Expression:
    flat = inline_ctes(qualified.copy())
    flat = pushdown_projections(flat)
    flat = pushdown_predicates(flat, dialect=DIALECT)
    for _ in range(3):  # each move can open the way for sqlglot's own pushdown
        if not push_group_key_predicates(flat):
            break
        flat = pushdown_predicates(flat, dialect=DIALECT)
    return flat


def _scan_predicates(select: exp.Select, table: exp.Table, alias: str) -> list[exp.Expression]:
    """Conjuncts on this scan alone that remove its rows before anything else sees them."""
    where = select.args.get("where")
    candidates = conjuncts(where.this if where else None)
    join = table.parent if isinstance(table.parent, exp.Join) else None
    if join is not None:
        if join.side not in ("RIGHT", "FULL"):  # an ON filters the table it joins
            candidates += conjuncts(join.args.get("on"))
    else:  # the FROM table: inner joins' ON conditions filter it too
        for other in select.args.get("joins") or []:
            if not other.side and other.kind != "CROSS":
                candidates += conjuncts(other.args.get("on"))
    return [c for c in candidates if {col.table for col in outer_columns(c)} == {alias}]


def collect_scans(flat: exp.Expression, schema: WarehouseSchema) -> list[Scan]:
    scans: list[Scan] = []
    for scope in traverse_scope(flat):
        if not isinstance(scope.expression, exp.Select):
            continue
        for alias, source in scope.sources.items():
            if not isinstance(source, exp.Table):
                continue
            info = schema.lookup(source)
            if info is None:
                continue
            columns = {c.name for c in scope.columns if c.table == alias}
            scans.append(
                Scan(
                    table=info,
                    alias=alias,
                    node=source,
                    select=scope.expression,
                    columns=columns,
                    predicates=_scan_predicates(scope.expression, source, alias),
                )
            )
    return scans


def build_model(tree: exp.Expression, schema: WarehouseSchema) -> QueryModel:
    """Model a parsed read-only query (see module docstring); raises SchemaMismatch."""
    original = tag(tree)
    qualified = qualify_query(original, schema)
    flat = flatten(qualified)
    return QueryModel(original, qualified, flat, schema, collect_scans(flat, schema))
