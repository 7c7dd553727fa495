"""What every rule uses: the finding type, lines and short quotes of the analyst's SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlglot import exp

from platform_assets.genai.sql_optimizer.analysis import NID, QueryModel, Scan, line_of
from platform_assets.genai.sql_optimizer.report import Finding

Rule = Callable[[QueryModel], list[Finding]]
DIALECT = "bigquery"
MAX_QUOTE = 90


def quote(node: exp.Expression | None, model: QueryModel | None = None) -> str:
    """`node` as the analyst wrote it (from `original` when the model can trace it), short."""
    if node is None:
        return ""
    if model is not None:
        node = model.node(node.meta.get(NID)) or node
    text = " ".join(node.sql(DIALECT).split())
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def source_line(model: QueryModel, node: exp.Expression | None) -> int | None:
    """The line in the analyst's SQL a node of any view came from."""
    if node is None:
        return None
    return line_of(model.node(node.meta.get(NID))) or line_of(node)


def scan_line(model: QueryModel, scan: Scan) -> int | None:
    return source_line(model, scan.node)


def per_reference(scans: Iterable[Scan]) -> dict[int | None, list[Scan]]:
    """Scans grouped by the table reference they come from (a CTE's reference repeats)."""
    grouped: dict[int | None, list[Scan]] = {}
    for scan in scans:
        grouped.setdefault(scan.nid, []).append(scan)
    return grouped


def finding(rule: str, line: int | None, message: str, fix: str) -> Finding:
    return Finding(rule=rule, line=line, message=message, fix=fix)
