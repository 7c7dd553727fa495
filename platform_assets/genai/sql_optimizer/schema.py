"""The warehouse as the optimizer sees it: every table with its columns and physical layout.

Raw tables come from the raw schemas (`platform_core/raw/schema.py`): columns, BigQuery types,
partition and clustering columns. dbt models come from the BigQuery rendering's manifest:
dataset, partition and cluster configs, `unique` tests; their columns are read off the
compiled SQL itself (qualified with sqlglot against the tables it reads, in dependency
order), so they are right even where a yml lists none.

`derived_partition` records that a model's partition column is the UTC date of another of its
columns (`cast(created_at as date) as order_date`): a filter on that timestamp then implies a
filter on the partition, which the partition rewrite uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from platform_core.raw.schema import RAW_TABLES

DIALECT = "bigquery"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class TableInfo:
    project: str
    dataset: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, BigQuery type or UNKNOWN), in order
    partition_column: str | None = None
    cluster_columns: tuple[str, ...] = ()
    unique_columns: frozenset[str] = frozenset()
    derived_partition: str | None = None  # column whose UTC date the partition column is
    kind: str = "model"  # raw | model
    description: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.dataset, self.name)

    @property
    def ref(self) -> str:
        return f"{self.dataset}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


@dataclass
class WarehouseSchema:
    project: str
    tables: dict[tuple[str, str], TableInfo] = field(default_factory=dict)

    def add(self, table: TableInfo) -> None:
        self.tables[table.key] = table

    def mapping(self) -> MappingSchema:
        nested: dict[str, dict[str, dict[str, dict[str, str]]]] = {self.project: {}}
        for table in self.tables.values():
            nested[self.project].setdefault(table.dataset, {})[table.name] = dict(table.columns)
        return MappingSchema(nested, dialect=DIALECT, normalize=False)

    def lookup(self, table: exp.Table) -> TableInfo | None:
        """The table a (qualified) table reference reads, if it is one of the warehouse's."""
        if not isinstance(table.this, exp.Identifier):
            return None  # a table function, UNNEST, ...
        if table.catalog and table.catalog != self.project:
            return None
        return self.tables.get((table.db, table.name))


def raw_tables(project: str, dataset: str) -> list[TableInfo]:
    return [
        TableInfo(
            project=project,
            dataset=dataset,
            name=raw.name,
            columns=tuple((c.name, c.bq_type) for c in raw.columns),
            partition_column=raw.partition_column,
            cluster_columns=tuple(raw.cluster_columns),
            kind="raw",
            description=raw.description,
        )
        for raw in RAW_TABLES.values()
    ]


def _cluster_columns(config: Mapping[str, Any]) -> tuple[str, ...]:
    cluster = config.get("cluster_by") or ()
    return (cluster,) if isinstance(cluster, str) else tuple(cluster)


def _unique_columns(manifest: Mapping[str, Any]) -> dict[str, set[str]]:
    unique: dict[str, set[str]] = {}
    for node in manifest["nodes"].values():
        test = node.get("test_metadata") or {}
        attached, column = node.get("attached_node"), node.get("column_name")
        if node["resource_type"] == "test" and test.get("name") == "unique" and attached and column:
            unique.setdefault(attached, set()).add(column)
    return unique


def _model_order(manifest: Mapping[str, Any]) -> list[str]:
    """Models upstream first, so each compiles against the columns of what it reads."""
    models = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen or node_id not in models:
            return
        seen.add(node_id)
        for parent in sorted(models[node_id]["depends_on"]["nodes"]):
            visit(parent)
        ordered.append(node_id)

    for node_id in sorted(models):
        visit(node_id)
    return ordered


def _outer_select(tree: exp.Expression) -> exp.Select | None:
    return tree if isinstance(tree, exp.Select) else None


def _date_of(projection: exp.Expression) -> exp.Column | None:
    """The column c of `CAST(c AS DATE)` / `DATE(c)`, else None."""
    is_cast = isinstance(projection, exp.Cast) and projection.to.is_type(exp.DataType.Type.DATE)
    is_date = isinstance(projection, exp.Date) and not projection.args.get("zone")
    inner = projection.this if is_cast or is_date else None
    return inner if isinstance(inner, exp.Column) else None


def derived_partition(select: exp.Select, partition_column: str | None) -> str | None:
    """The output column whose UTC date is the partition column, when the SQL says so."""
    if not partition_column:
        return None
    outputs = {s.alias_or_name: s.unalias() for s in select.selects}
    source = _date_of(outputs.get(partition_column, exp.null()))
    if source is None:
        return None
    for name, expression in outputs.items():
        if name != partition_column and expression == source:
            return name
    return None


def _model_columns(
    sql: str, schema: MappingSchema, project: str
) -> tuple[list[tuple[str, str]], exp.Select | None]:
    try:
        tree = qualify(
            sqlglot.parse_one(sql, read=DIALECT), schema=schema, catalog=project, dialect=DIALECT
        )
        tree = annotate_types(tree, schema=schema, dialect=DIALECT)
    except (OptimizeError, ParseError, ValueError):
        return [], None
    select = _outer_select(tree)
    selects = tree.selects if isinstance(tree, exp.Query) else []
    columns = [
        (s.alias_or_name, s.type.sql(DIALECT) if s.type and not s.is_type(UNKNOWN) else UNKNOWN)
        for s in selects
    ]
    return columns, select


def model_table(
    node: Mapping[str, Any], schema: WarehouseSchema, unique: Iterable[str]
) -> TableInfo:
    config = node.get("config") or {}
    partition = (config.get("partition_by") or {}).get("field")
    columns, select = _model_columns(
        node.get("compiled_code") or "", schema.mapping(), schema.project
    )
    if not columns:  # the yml's columns, types unknown
        columns = [(name, UNKNOWN) for name in node.get("columns") or {}]
    return TableInfo(
        project=node.get("database") or schema.project,
        dataset=node["schema"],
        name=node.get("alias") or node["name"],
        columns=tuple(columns),
        partition_column=partition,
        cluster_columns=_cluster_columns(config),
        unique_columns=frozenset(unique),
        derived_partition=derived_partition(select, partition) if select is not None else None,
        kind="model",
        description=node.get("description") or "",
    )


def build_schema(manifest: Mapping[str, Any], *, project: str, raw_dataset: str) -> WarehouseSchema:
    """Raw tables plus every model of the BigQuery rendering."""
    schema = WarehouseSchema(project=project)
    for table in raw_tables(project, raw_dataset):
        schema.add(table)
    unique = _unique_columns(manifest)
    for node_id in _model_order(manifest):
        schema.add(model_table(manifest["nodes"][node_id], schema, unique.get(node_id, ())))
    return schema
