"""One query in, one report out: findings, bytes before and after, the best rewrite.

    parse (safety gate) -> model (schema) -> rules -> cost -> rule rewrite -> LLM rewrite
    -> verification -> report

The rewrite reported is the cheapest verified one; when none verifies, the first candidate
is reported as an unverified suggestion, never as a fix. A candidate that would read more
bytes than the original is dropped (merging two scans of different days reads every column
of both days: more, not less). The LLM is asked only about
findings the rule rewrites did not fix and that a rewrite can fix at all (an exact count,
a `SELECT *` or a cache-defeating CURRENT_DATE() keep their result only as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from platform_assets.genai.llm import chat_model, llm_timeout
from platform_assets.genai.sql_optimizer.analysis import QueryModel, SchemaMismatch, build_model
from platform_assets.genai.sql_optimizer.cost import DryRunEstimator, Estimator, LocalEstimator
from platform_assets.genai.sql_optimizer.dbt_render import load_manifest
from platform_assets.genai.sql_optimizer.llm_rewrite import LLMRewriter
from platform_assets.genai.sql_optimizer.report import QueryReport, Rewrite
from platform_assets.genai.sql_optimizer.rewrites import rule_rewrite
from platform_assets.genai.sql_optimizer.rules import run_rules
from platform_assets.genai.sql_optimizer.safety import Refused, parse_read_only
from platform_assets.genai.sql_optimizer.schema import WarehouseSchema, build_schema
from platform_assets.genai.sql_optimizer.stats import collect_stats
from platform_assets.genai.sql_optimizer.verify import LocalVerifier, Verification
from platform_assets.genai.sql_optimizer.warehouse import open_warehouse

LLM_FIXABLE = frozenset(
    {
        "missing_partition_filter", "non_sargable_partition_filter", "unused_cluster_filter",
        "order_by_without_limit", "repeated_scan", "cross_join", "join_before_aggregate",
        "large_in_subquery",
    }
)  # fmt: skip


@dataclass
class Candidate:
    sql: str
    source: str  # rule | llm
    fixes: tuple[str, ...]
    verification: Verification
    after: int | None


@dataclass
class Optimizer:
    schema: WarehouseSchema
    estimator: Estimator
    verifier: LocalVerifier | None
    llm: LLMRewriter

    def optimize(self, sql: str, name: str = "-") -> QueryReport:
        report = QueryReport(query=name)
        try:
            model = build_model(parse_read_only(sql), self.schema)
        except Refused as refused:
            report.refused, report.reason = True, refused.reason
            return report
        except SchemaMismatch as error:
            report.reason = str(error)
            return report
        report.findings = run_rules(model)
        report.bytes_before = self.estimator.estimate(model, sql)
        report.notes.append(f"bytes: {self.estimator.label}")
        candidates = self._candidates(model, sql, report)
        chosen = self._choose(candidates, report.bytes_before, report.notes)
        if chosen is not None:
            report.bytes_after = chosen.after
            report.rewrite = Rewrite(
                chosen.sql,
                chosen.verification.verified,
                chosen.verification.text,
                chosen.source,
                chosen.fixes,
            )
        return report

    def _verify(self, model: QueryModel, sql: str) -> tuple[Verification, int | None]:
        if self.verifier is None:
            verification = Verification(
                False, "not verified: no local warehouse on this deployment"
            )
            try:
                candidate_model = build_model(parse_read_only(sql), self.schema)
            except (Refused, SchemaMismatch):
                return verification, None
            return verification, self.estimator.estimate(candidate_model, sql)
        verification = self.verifier.verify(model, sql)
        after = self.estimator.estimate(verification.model, sql) if verification.model else None
        return verification, after

    def _candidates(self, model: QueryModel, sql: str, report: QueryReport) -> list[Candidate]:
        found = {f.rule for f in report.findings}
        candidates: list[Candidate] = []
        ruled = rule_rewrite(model.original, self.schema, found)
        if ruled is not None:
            verification, after = self._verify(model, ruled.sql)
            candidates.append(Candidate(ruled.sql, "rule", ruled.fixes, verification, after))
        fixed = set(ruled.fixes) if ruled else set()
        open_findings = [
            f for f in report.findings if f.rule in LLM_FIXABLE and f.rule not in fixed
        ]
        if not open_findings:
            return candidates
        base = candidates[0].sql if candidates and candidates[0].verification.verified else sql
        tables = [self.schema.tables[key] for key in sorted(model.tables())]
        proposal, note = self.llm.rewrite(base, open_findings, tables)
        report.notes.append(note)
        if proposal is not None:
            verification, after = self._verify(model, proposal)
            rules = tuple(dict.fromkeys([*fixed, *(f.rule for f in open_findings)]))
            candidates.append(Candidate(proposal, "llm", rules, verification, after))
        return candidates

    @staticmethod
    def _choose(
        candidates: list[Candidate], before: int | None, notes: list[str]
    ) -> Candidate | None:
        """The cheapest verified candidate; else the first that does not read more."""
        affordable = []
        for candidate in candidates:
            if candidate.after is not None and before is not None and candidate.after > before:
                notes.append(
                    f"{candidate.source} rewrite dropped: it would read more "
                    f"({candidate.after} > {before} bytes)"
                )
            else:
                affordable.append(candidate)
        verified = [c for c in affordable if c.verification.verified]
        if verified:
            return min(verified, key=lambda c: c.after if c.after is not None else before or 0)
        return affordable[0] if affordable else None


def local_stats_loader(settings: Any, schema: WarehouseSchema) -> Any:
    def load() -> Any:
        con = open_warehouse(settings)
        try:
            return collect_stats(con, settings, schema)
        finally:
            con.close()

    return load


def build_optimizer(
    settings: Any,
    *,
    manifest: dict[str, Any] | None = None,
    llm_model: Any = None,
    bigquery_client: Any = None,
) -> Optimizer:
    """The optimizer for this deployment: local statistics and DuckDB verification locally,
    BigQuery dry runs on gcp. `llm_model` replaces the configured chat model (tests)."""
    manifest = manifest if manifest is not None else load_manifest(settings)
    schema = build_schema(
        manifest, project=settings.gcp_project, raw_dataset=settings.bq_raw_dataset
    )
    choice = chat_model(settings)
    if llm_model is not None:
        choice = type(choice)(llm_model, f"{type(llm_model).__name__} (given)")
    llm = LLMRewriter(choice, llm_timeout(settings))
    if settings.is_local:
        estimator: Estimator = LocalEstimator(local_stats_loader(settings, schema))
        return Optimizer(schema, estimator, LocalVerifier(settings, schema), llm)
    if bigquery_client is None:
        from google.cloud import bigquery

        bigquery_client = bigquery.Client(
            project=settings.gcp_project, location=settings.bq_location
        )
    return Optimizer(schema, DryRunEstimator(bigquery_client, settings.bq_location), None, llm)
