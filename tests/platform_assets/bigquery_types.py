"""Type-check compiled BigQuery SQL offline, for what the dialect would reject or compute
differently from DuckDB.

sqlglot qualifies every column against a schema (the raw tables from
platform_core/raw/schema.py, the models from their contracts in the manifest) and annotates
every expression with its BigQuery type; the rules below then look for:

- a comparison of different temporal types (TIMESTAMP with DATETIME or DATE): BigQuery
  rejects it (`dbt.dateadd` returns a DATETIME there);
- a division whose operands are not both FLOAT64: BigQuery divides NUMERIC exactly and
  INT64 into FLOAT64 while DuckDB turns DECIMAL division into DOUBLE, so results (an
  average order value rounded to cents) differ; ratios go through floats, money through the
  `divide_money` macro's integer cents;
- an unsafe cast: CAST of a STRING column to a non-string type fails the query on one bad
  value; SAFE_CAST of a STRING to INT64 is NULL for '2.7' where DuckDB's TRY_CAST gives 3
  (allowed only under a regular-expression guard, as the `parse_integer` macro writes it);
  a FLOAT64 or NUMERIC cast to INT64 rounds differently unless it is rounded first.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from platform_core.raw.schema import RAW_TABLES

TEMPORAL = {"DATE", "DATETIME", "TIMESTAMP", "TIME"}
INTEGER = {"INT64", "INT", "BIGINT", "SMALLINT", "TINYINT"}
FLOAT = {"FLOAT64", "FLOAT", "DOUBLE"}
EXACT = {"NUMERIC", "BIGNUMERIC", "DECIMAL", "BIGDECIMAL"}
STRINGS = {"STRING", "BYTES", "JSON"}
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)
ROUNDED = (exp.Round, exp.Floor, exp.Ceil)


def warehouse_schema(
    manifest: Mapping[str, Any], project: str, raw_dataset: str, infer: bool = False
) -> MappingSchema:
    """The raw tables and every model and seed, with the BigQuery types their contracts
    declare; with `infer`, a model without them gets the types of its compiled SELECT
    (models in dependency order), so a project without contracts can be checked too."""
    tables: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
    raw = tables.setdefault(project, {}).setdefault(raw_dataset, {})
    for name, table in RAW_TABLES.items():
        raw[name] = {c.name: c.bq_type for c in table.columns}
    for node in _in_dependency_order(manifest):
        columns = {name: col.get("data_type") for name, col in node["columns"].items()}
        if node["resource_type"] == "seed":
            columns = {**columns, **(node["config"].get("column_types") or {})}
        if not columns or not all(columns.values()):
            if not infer:
                raise ValueError(f"{node['name']}: every column needs a data_type (a contract)")
            if "compiled_code" not in node:
                continue
            columns = output_types(node["compiled_code"], MappingSchema(tables, dialect="bigquery"))
        dataset = tables.setdefault(node["database"], {}).setdefault(node["schema"], {})
        dataset[node["alias"]] = columns
    return MappingSchema(tables, dialect="bigquery")


def output_types(sql: str, schema: MappingSchema) -> dict[str, str]:
    """The columns of a statement's result with their BigQuery types."""
    tree = annotate_types(_qualified(sql, schema), schema=schema, dialect="bigquery")
    return {select.alias_or_name: select.type.sql("bigquery") for select in tree.selects}


def _in_dependency_order(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    nodes = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed")
    }
    done: dict[str, dict[str, Any]] = {}

    def visit(uid: str) -> None:
        if uid in done or uid not in nodes:
            return
        for parent in nodes[uid].get("depends_on", {}).get("nodes", []):
            visit(parent)
        done[uid] = nodes[uid]

    for uid in sorted(nodes):
        visit(uid)
    return list(done.values())


def _qualified(sql: str, schema: MappingSchema) -> exp.Expression:
    return qualify(
        exp.maybe_parse(sql, dialect="bigquery"),
        schema=schema,
        dialect="bigquery",
        validate_qualify_columns=True,
        quote_identifiers=False,
    )


def check(sql: str, schema: MappingSchema) -> list[str]:
    """Every problem found in one compiled statement, as readable lines."""
    tree = annotate_types(_qualified(sql, schema), schema=schema, dialect="bigquery")
    return [*_comparisons(tree), *_divisions(tree), *_casts(tree)]


def type_name(node: exp.Expression | None) -> str:
    if node is None or node.type is None:
        return "UNKNOWN"
    return node.type.sql("bigquery").split("(")[0].upper()


def _comparisons(tree: exp.Expression) -> Iterator[str]:
    for node in tree.find_all(*COMPARISONS, exp.Between):
        if isinstance(node, exp.Between):
            sides = [node.this, node.args.get("low"), node.args.get("high")]
        else:
            sides = [node.left, node.right]
        kinds = {type_name(side) for side in sides}
        if len(kinds & TEMPORAL) > 1:
            yield f"compares {' with '.join(sorted(kinds))}: {_excerpt(node)}"


def _divisions(tree: exp.Expression) -> Iterator[str]:
    for node in tree.find_all(exp.Div, exp.SafeDivide):
        sides = [node.this, node.expression]
        kinds = [type_name(side) for side in sides]
        if not all(kind in FLOAT for kind in kinds):
            yield f"divides {' by '.join(kinds)} (not FLOAT64 / FLOAT64): {_excerpt(node)}"


def _casts(tree: exp.Expression) -> Iterator[str]:
    for node in tree.find_all(exp.Cast):  # TryCast (SAFE_CAST) is a Cast too
        source, target = type_name(node.this), type_name(node.to)
        safe = isinstance(node, exp.TryCast) or bool(node.args.get("safe"))
        literal = isinstance(node.this, exp.Literal)
        if source == "STRING" and target not in STRINGS and not safe and not literal:
            yield f"CAST of STRING to {target} fails on one bad value: {_excerpt(node)}"
        elif source == "STRING" and target in INTEGER and not _regex_guarded(node):
            yield f"SAFE_CAST of STRING to {target} differs from DuckDB for '2.7': {_excerpt(node)}"
        elif (
            source in FLOAT | EXACT
            and target in INTEGER
            and not isinstance(node.this.unnest(), ROUNDED)
        ):
            yield f"{source} cast to {target} rounds differently unless rounded: {_excerpt(node)}"


def _regex_guarded(node: exp.Expression) -> bool:
    """Inside a CASE/IF branch whose condition is a regular-expression match."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, (exp.If, exp.Case)):
            condition = parent.this if isinstance(parent, exp.If) else None
            conditions = [condition] if condition is not None else []
            if isinstance(parent, exp.Case):
                conditions = [branch.this for branch in parent.args.get("ifs") or []]
            if any(c is not None and c.find(exp.RegexpLike) for c in conditions):
                return True
        parent = parent.parent
    return False


def _excerpt(node: exp.Expression) -> str:
    text = " ".join(node.sql("bigquery").split())
    return text if len(text) <= 160 else text[:157] + "..."
