"""The shop database's own constraints, read from PostgreSQL's catalog.

NOT NULL columns (`pg_attribute.attnotnull`), CHECK constraints (`pg_get_constraintdef`),
enum-typed columns (`pg_enum`) and primary keys of the captured schema become `Constraint`s:
what the source refuses, so what must never arrive in the CDC staging tables. CHECK
definitions are parsed with sqlglot (PostgreSQL dialect): a comparison with a number is a
range, `= ANY (ARRAY[...])` or `IN (...)` a list of accepted values, anything else stays an
expression, rendered in DuckDB's dialect (the rules' dialect, transpiled for BigQuery).

The code location never connects to the database when it loads: it reads a snapshot of the
catalog, `source_constraints.json` next to this module, which
`python -m platform_assets.quality constraints --refresh` rewrites from SOURCE_DB_DSN (a
migration of the shop database is followed by a refresh, like `make prepare` after a dbt
change). A test compares the snapshot with the catalog of a database built from the
migrations, so a migration without a refresh fails CI.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg
import sqlglot
from psycopg.rows import dict_row
from sqlglot import exp

from platform_assets.quality.specs import Constraint
from platform_core.raw.schema import CDC_TABLES

SNAPSHOT = Path(__file__).with_name("source_constraints.json")

NOT_NULL_SQL = """
select c.relname as table_name, a.attname as column_name
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(schema)s and c.relkind in ('r', 'p') and a.attnum > 0
  and not a.attisdropped and a.attnotnull
order by c.relname, a.attnum
"""
CHECKS_SQL = """
select c.relname as table_name, con.conname as name, pg_get_constraintdef(con.oid) as definition,
       array(select a.attname from pg_attribute a
             where a.attrelid = c.oid and a.attnum = any(con.conkey) order by a.attnum) as columns
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(schema)s and con.contype = 'c'
order by c.relname, con.conname
"""
ENUMS_SQL = """
select c.relname as table_name, a.attname as column_name, t.typname as type_name,
       array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid
             order by e.enumsortorder) as labels
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_type t on t.oid = a.atttypid
where n.nspname = %(schema)s and c.relkind in ('r', 'p') and a.attnum > 0
  and not a.attisdropped and t.typtype = 'e'
order by c.relname, a.attnum
"""
PRIMARY_KEYS_SQL = """
select c.relname as table_name,
       array(select a.attname from pg_attribute a
             where a.attrelid = c.oid and a.attnum = any(con.conkey) order by a.attnum) as columns
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(schema)s and con.contype = 'p'
"""


def read_catalog(
    dsn: str, schema: str = "public", tables: tuple[str, ...] = CDC_TABLES
) -> dict[str, Any]:
    """The constraints of the captured tables of `schema`, as the snapshot stores them."""
    with psycopg.connect(dsn, row_factory=dict_row) as con:

        def rows(sql: str) -> list[dict[str, Any]]:
            return list(con.execute(sql, {"schema": schema}).fetchall())

        found: dict[str, dict[str, Any]] = {}

        def table(name: str) -> dict[str, Any]:
            if name not in tables:
                return {"primary_key": [], "constraints": []}  # not captured: not kept
            return found.setdefault(name, {"primary_key": [], "constraints": []})

        for row in rows(PRIMARY_KEYS_SQL):
            table(row["table_name"])["primary_key"] = list(row["columns"])
        for row in rows(NOT_NULL_SQL):
            required = not_null(row["table_name"], row["column_name"])
            table(row["table_name"])["constraints"].append(asdict(required))
        for row in rows(CHECKS_SQL):
            check = from_check(
                row["table_name"], row["name"], row["definition"], list(row["columns"])
            )
            table(row["table_name"])["constraints"].append(asdict(check))
        for row in rows(ENUMS_SQL):
            labels = enum(
                row["table_name"], row["column_name"], row["type_name"], list(row["labels"])
            )
            table(row["table_name"])["constraints"].append(asdict(labels))
    catalog = {"source": "postgresql", "schema": schema, "tables": dict(sorted(found.items()))}
    return json.loads(json.dumps(catalog))  # plain JSON, as the snapshot file holds it


def not_null(table: str, column: str) -> Constraint:
    return Constraint(
        name=f"{table}.{column} not null",
        kind="not_null",
        columns=(column,),
        expression=f"{column} is not null",
        origin=f"postgres:{table}",
        definition="NOT NULL",
    )


def enum(table: str, column: str, type_name: str, labels: list[str]) -> Constraint:
    return Constraint(
        name=f"{table}.{column} enum {type_name}",
        kind="accepted_values",
        columns=(column,),
        expression=_in_list(column, labels),
        origin=f"postgres:{table}",
        definition=f"{column} {type_name} ({', '.join(labels)})",
        values=tuple(labels),
    )


def _in_list(column: str, values: list[str] | tuple[str, ...]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f'"{column}" in ({quoted})'


def _literal(node: exp.Expression) -> exp.Literal | None:
    """The literal under casts and parentheses (`(0)::numeric`, `'paid'::text`)."""
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return exp.Literal.number(f"-{node.this.this}")
    return node if isinstance(node, exp.Literal) else None


FLIP = {exp.GTE: exp.LTE, exp.GT: exp.LT, exp.LTE: exp.GTE, exp.LT: exp.GT}


def _bound(node: exp.Expression) -> tuple[str, type, float] | None:
    """(column, comparison, number) of `column <op> number` (either side)."""
    if type(node) not in FLIP:
        return None
    left, right = node.this, node.expression
    op: type = type(node)
    if isinstance(right, exp.Column) and _literal(left) is not None:
        left, right, op = right, left, FLIP[op]
    literal = _literal(right)
    if not isinstance(left, exp.Column) or literal is None or literal.is_string:
        return None
    return left.name, op, float(literal.this)


def _accepted(node: exp.Expression) -> tuple[str, list[str]] | None:
    """(column, values) of `column = ANY (ARRAY[...])` or `column IN (...)`."""
    if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
        array = node.expression.this
        while isinstance(array, exp.Paren):
            array = array.this
        items = array.expressions if isinstance(array, exp.Array) else []
        column = node.this
    elif isinstance(node, exp.In):
        items, column = node.expressions, node.this
    else:
        return None
    literals = [_literal(item) for item in items]
    if not isinstance(column, exp.Column) or not literals or any(x is None for x in literals):
        return None
    return column.name, [str(x.this) for x in literals if x is not None]


def from_check(table: str, name: str, definition: str, columns: list[str]) -> Constraint:
    """A CHECK constraint from its `pg_get_constraintdef` text."""
    body = definition.strip()
    if body.upper().startswith("CHECK"):
        body = body[len("CHECK") :].strip()
    body = body.removesuffix("NOT VALID").strip()
    tree = sqlglot.parse_one(body, read="postgres")
    while isinstance(tree, exp.Paren):
        tree = tree.this
    common = {"name": f"{table}.{name}", "origin": f"postgres:{table}", "definition": definition}
    accepted = _accepted(tree)
    if accepted:
        column, values = accepted
        return Constraint(
            kind="accepted_values",
            columns=(column,),
            expression=_in_list(column, values),
            values=tuple(values),
            **common,
        )
    bounds = (
        [_bound(part.unnest()) for part in tree.flatten()]
        if isinstance(tree, exp.And)
        else [_bound(tree)]
    )
    if bounds and all(bounds) and len({b[0] for b in bounds if b}) == 1:
        return _range(table, name, definition, [b for b in bounds if b])
    return Constraint(
        kind="expression",
        columns=tuple(columns),
        expression=tree.sql(dialect="duckdb"),
        **common,
    )


def _range(
    table: str, name: str, definition: str, bounds: list[tuple[str, type, float]]
) -> Constraint:
    column = bounds[0][0]
    lower = upper = None
    lower_inclusive = upper_inclusive = True
    parts = []
    for _, op, value in bounds:
        symbol = {exp.GTE: ">=", exp.GT: ">", exp.LTE: "<=", exp.LT: "<"}[op]
        parts.append(f'"{column}" {symbol} {value:g}')
        if op in (exp.GTE, exp.GT):
            lower, lower_inclusive = value, op is exp.GTE
        else:
            upper, upper_inclusive = value, op is exp.LTE
    return Constraint(
        name=f"{table}.{name}",
        kind="range",
        columns=(column,),
        expression=" and ".join(parts),
        origin=f"postgres:{table}",
        definition=definition,
        lower=lower,
        lower_inclusive=lower_inclusive,
        upper=upper,
        upper_inclusive=upper_inclusive,
    )


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, Any]:
    if not path.exists():
        return {"tables": {}}
    return json.loads(path.read_text())


def save_snapshot(catalog: dict[str, Any], path: Path = SNAPSHOT) -> None:
    path.write_text(json.dumps(catalog, indent=1, sort_keys=True) + "\n")


def table_constraints(
    catalog: dict[str, Any], table: str
) -> tuple[tuple[Constraint, ...], tuple[str, ...]]:
    """(constraints, primary key) of one source table in a snapshot."""
    entry = catalog.get("tables", {}).get(table) or {}
    constraints = tuple(
        Constraint(**{**c, "columns": tuple(c["columns"]), "values": tuple(c.get("values") or ())})
        for c in entry.get("constraints", [])
    )
    return constraints, tuple(entry.get("primary_key") or ())
