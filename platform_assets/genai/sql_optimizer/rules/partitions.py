"""Rules on how a query uses the tables' physical layout: partitions and clustering."""

from __future__ import annotations

from sqlglot import exp

from platform_assets.genai.sql_optimizer.analysis import QueryModel, Scan
from platform_assets.genai.sql_optimizer.predicates import (
    mentions,
    outer_columns,
    partition_filter,
    prunable,
)
from platform_assets.genai.sql_optimizer.report import Finding
from platform_assets.genai.sql_optimizer.rules.base import (
    finding,
    quote,
    scan_line,
    source_line,
)


def _partitioned(model: QueryModel) -> list[Scan]:
    return [s for s in model.scans if s.table.partition_column]


def _derived_hint(scan: Scan) -> str:
    derived = scan.table.derived_partition
    if derived and any(mentions(p, scan.alias, derived) for p in scan.predicates):
        return (
            f" The query filters `{derived}`, and `{scan.table.partition_column}` is its UTC "
            f"date, so the same bound on `{scan.table.partition_column}` keeps the result "
            "and prunes."
        )
    return ""


def missing_partition_filter(model: QueryModel) -> list[Finding]:
    """A partitioned table read with no filter on its partition column."""
    unfiltered: dict[tuple[str, str], list[Scan]] = {}
    for scan in _partitioned(model):
        column = scan.table.partition_column or ""
        if scan.columns and not partition_filter(scan.predicates, scan.alias, column).mentioned:
            unfiltered.setdefault(scan.table.key, []).append(scan)
    findings = []
    for scans in unfiltered.values():
        scan = scans[0]
        column = scan.table.partition_column
        reads = f" ({len(scans)} reads)" if len(scans) > 1 else ""
        findings.append(
            finding(
                "missing_partition_filter",
                scan_line(model, scan),
                f"`{scan.table.ref}` is partitioned by `{column}` but this read{reads} has no "
                f"filter on it, so every partition is scanned.{_derived_hint(scan)}",
                f"Filter on `{column}` to the days you need, e.g. `{column} >= DATE '2026-11-01'`.",
            )
        )
    return findings


def _wrapped(predicate: exp.Expression, alias: str, column: str) -> bool:
    """The partition column sits inside a function, cast or arithmetic."""
    for col in outer_columns(predicate):
        if col.name == column and col.table == alias:
            parent = col.parent
            while isinstance(parent, exp.Paren):
                parent = parent.parent
            if not isinstance(parent, exp.Predicate | exp.Connector | exp.Not):
                return True
    return False


def _why_not_sargable(predicate: exp.Expression, alias: str, column: str) -> tuple[str, str]:
    node = predicate.unnest()
    if isinstance(node, exp.Or) and not all(mentions(b, alias, column) for b in node.flatten()):
        return (
            "is an OR across columns: BigQuery cannot prune with it",
            f"Filter `{column}` on its own (`AND {column} BETWEEN ...` covering every branch), "
            "or split the branches with UNION ALL.",
        )
    if predicate.find(exp.Query):
        return (
            "compares the partition column with a subquery, a value known only at run time",
            f"Compare `{column}` with a constant: compute the date first (a literal, a query "
            "parameter or a script variable).",
        )
    if _wrapped(predicate, alias, column):
        return (
            f"wraps the partition column `{column}` in a function or cast",
            f"Compare the bare column with a constant range, e.g. `{column} BETWEEN "
            f"DATE '2026-01-01' AND DATE '2026-12-31'` instead of `EXTRACT(YEAR FROM {column})"
            " = 2026`.",
        )
    return (
        "compares the partition column with something that is not a constant",
        f"Compare `{column}` itself with constants (=, <, BETWEEN, IN).",
    )


def non_sargable_partition_filter(model: QueryModel) -> list[Finding]:
    """A filter on the partition column that defeats pruning (function, cast, OR, subquery)."""
    findings = []
    seen: set[int | None] = set()
    for scan in _partitioned(model):
        column = scan.table.partition_column or ""
        result = partition_filter(scan.predicates, scan.alias, column)
        if not result.mentioned or result.prunes:
            continue
        for predicate in result.offending:
            nid = predicate.meta.get("nid")
            if nid in seen:
                continue
            seen.add(nid)
            why, fix = _why_not_sargable(predicate, scan.alias, column)
            findings.append(
                finding(
                    "non_sargable_partition_filter",
                    source_line(model, predicate) or scan_line(model, scan),
                    f"`{quote(predicate, model)}` {why}: every partition of "
                    f"`{scan.table.ref}` is read.",
                    fix,
                )
            )
    return findings


def unused_cluster_filter(model: QueryModel) -> list[Finding]:
    """A filter on a clustering column that block pruning cannot use."""
    findings = []
    seen: set[int | None] = set()
    for scan in model.scans:
        for predicate in scan.predicates:
            for column in scan.table.cluster_columns:
                if not mentions(predicate, scan.alias, column) or prunable(
                    predicate, scan.alias, column
                ):
                    continue
                nid = predicate.meta.get("nid")
                if nid in seen:
                    continue
                seen.add(nid)
                clustering = ", ".join(scan.table.cluster_columns)
                findings.append(
                    finding(
                        "unused_cluster_filter",
                        source_line(model, predicate) or scan_line(model, scan),
                        f"`{quote(predicate, model)}` filters clustering column `{column}` of "
                        f"`{scan.table.ref}` (clustered by {clustering}) through a function, "
                        "a leading wildcard or a non-constant, so BigQuery cannot skip blocks "
                        "with it.",
                        f"Compare the bare `{column}` with constants (values are stored as "
                        f"written: `{column} = 'Order Completed'`, `{column} IN (...)`, "
                        f"`{column} LIKE 'prefix%'`).",
                    )
                )
    return findings
