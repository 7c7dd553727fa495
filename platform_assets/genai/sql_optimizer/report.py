"""What the optimizer says about one query, as JSON (for tools) and as text (for people).

JSON, one object per query (the shape tools rely on):
    {"query": str, "refused": bool, "reason": str|null,
     "findings": [{"rule", "line", "message", "fix"}],
     "estimated_bytes": {"before": int, "after": int|null},
     "rewrite": {"sql", "verified": bool, "verification": str, "source": "rule"|"llm"}|null}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int | None
    message: str
    fix: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "line": self.line, "message": self.message, "fix": self.fix}


@dataclass
class Rewrite:
    sql: str
    verified: bool
    verification: str
    source: str  # rule | llm
    fixes: tuple[str, ...] = ()  # rule ids the rewrite addresses

    def to_json(self) -> dict[str, Any]:
        return {
            "sql": self.sql,
            "verified": self.verified,
            "verification": self.verification,
            "source": self.source,
        }


@dataclass
class QueryReport:
    query: str
    refused: bool = False
    reason: str | None = None
    findings: list[Finding] = field(default_factory=list)
    bytes_before: int | None = None
    bytes_after: int | None = None
    rewrite: Rewrite | None = None
    notes: list[str] = field(default_factory=list)  # how bytes were measured, LLM used, ...

    @property
    def saved_bytes(self) -> int:
        if self.rewrite is None or not self.rewrite.verified or self.bytes_after is None:
            return 0
        return max(0, (self.bytes_before or 0) - self.bytes_after)

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "refused": self.refused,
            "reason": self.reason,
            "findings": [f.to_json() for f in self.findings],
            "estimated_bytes": {"before": self.bytes_before, "after": self.bytes_after},
            "rewrite": self.rewrite.to_json() if self.rewrite else None,
        }


def human_bytes(value: int | None) -> str:
    if value is None:
        return "unknown"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.splitlines())


def render_text(report: QueryReport) -> str:
    lines = [f"== {report.query}"]
    if report.refused:
        lines.append(f"REFUSED: {report.reason}")
        return "\n".join(lines)
    if report.reason:
        lines.append(f"not analysed: {report.reason}")
        return "\n".join(lines)
    before, after = human_bytes(report.bytes_before), human_bytes(report.bytes_after)
    cost = f"estimated bytes: {before}"
    if report.bytes_after is not None:
        cost += f" -> {after}"
    lines.append(cost)
    lines += [f"  ({note})" for note in report.notes]
    if not report.findings:
        lines.append("no findings")
    for finding in report.findings:
        where = f"line {finding.line}" if finding.line else "query"
        lines.append(f"- [{finding.rule}] {where}: {finding.message}")
        lines.append(f"    fix: {finding.fix}")
    if report.rewrite:
        rewrite = report.rewrite
        status = "VERIFIED rewrite" if rewrite.verified else "UNVERIFIED suggestion (not a fix)"
        lines.append(f"{status} ({rewrite.source}): {rewrite.verification}")
        lines.append(_indent(rewrite.sql))
    return "\n".join(lines)
