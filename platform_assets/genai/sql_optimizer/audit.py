"""Every dbt model and analysis of the project through the optimizer, and the totals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from platform_assets.genai.sql_optimizer.dbt_render import project_queries
from platform_assets.genai.sql_optimizer.optimizer import Optimizer
from platform_assets.genai.sql_optimizer.report import QueryReport, human_bytes


@dataclass
class AuditSummary:
    queries: int
    findings_per_rule: dict[str, int]
    rewrites: int
    verified: int
    bytes_before: int
    bytes_saved: int  # by verified rewrites

    def to_json(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "findings_per_rule": self.findings_per_rule,
            "rewrites": self.rewrites,
            "verified_rewrites": self.verified,
            "estimated_bytes_before": self.bytes_before,
            "estimated_bytes_saved": self.bytes_saved,
        }

    def text(self) -> str:
        rules = ", ".join(f"{rule} {count}" for rule, count in self.findings_per_rule.items())
        return (
            f"{self.queries} queries, {sum(self.findings_per_rule.values())} findings"
            f" ({rules or 'none'}); {self.verified} of {self.rewrites} rewrites verified; "
            f"estimated bytes {human_bytes(self.bytes_before)}, verified rewrites save "
            f"{human_bytes(self.bytes_saved)}"
        )


def audit(
    optimizer: Optimizer, manifest: dict[str, Any], select: Iterable[str] = ()
) -> list[QueryReport]:
    wanted = set(select)
    return [
        optimizer.optimize(query.sql, query.label)
        for query in project_queries(manifest)
        if not wanted or query.name in wanted
    ]


def summarize(reports: list[QueryReport]) -> AuditSummary:
    per_rule = Counter(f.rule for r in reports for f in r.findings)
    rewrites = [r.rewrite for r in reports if r.rewrite]
    return AuditSummary(
        queries=len(reports),
        findings_per_rule=dict(sorted(per_rule.items())),
        rewrites=len(rewrites),
        verified=sum(1 for rw in rewrites if rw.verified),
        bytes_before=sum(r.bytes_before or 0 for r in reports),
        bytes_saved=sum(r.saved_bytes for r in reports),
    )
