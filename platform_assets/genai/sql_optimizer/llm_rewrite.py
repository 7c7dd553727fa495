"""LLM rewrites for what the rules cannot fix: Gemini through LangChain, structured output.

The chain is `ChatPromptTemplate | model.with_structured_output(SqlRewrite)` under the
platform's deadline (`genai.llm.structured_call`). The query, the findings and the tables'
layout reach the model only as quoted JSON data blocks (`genai.prompting`): a string
literal or a comment in the analyst's SQL that says "ignore previous instructions" stays
data. Whatever comes back is only a candidate: it goes through the same safety gate and
verification as any rewrite, so a manipulated or wrong answer cannot become a fix. Without a
model (local default, no credentials) or when it fails, there is simply no LLM rewrite: the
deterministic fallback is the rule rewrites and the findings' fixes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from platform_assets.genai.llm import LLMUnavailable, ModelChoice, structured_call
from platform_assets.genai.prompting import DATA_RULES, quote_data
from platform_assets.genai.sql_optimizer.report import Finding
from platform_assets.genai.sql_optimizer.schema import TableInfo

SYSTEM_PROMPT = (
    "You optimise BigQuery SQL for cost (bytes processed) without changing its result. "
    "Return exactly one SELECT query in BigQuery Standard SQL, never DML, DDL or a script. "
    "It must return the same columns (names, order, types) and the same rows as the "
    "original, in the same order where the original has an ORDER BY, and read no table "
    "the original does not. Prefer filters on partition columns, one scan instead of "
    "several (conditional aggregation, window functions), aggregating before joining. "
    "If no rewrite is safe, return the original query unchanged. " + DATA_RULES
)
HUMAN_PROMPT = (
    "Rewrite the query below to fix the findings, using the tables' layout.\n\n"
    "{query}\n\n{findings}\n\n{tables}"
)


class SqlRewrite(BaseModel):
    """A cheaper query with the same result."""

    sql: str = Field(description="The rewritten query: one BigQuery SELECT statement.")
    explanation: str = Field(description="What changed and why it processes fewer bytes.")


@dataclass
class LLMRewriter:
    choice: ModelChoice
    timeout: float

    @property
    def available(self) -> bool:
        return self.choice.model is not None

    def prompt(self) -> Any:
        from langchain_core.prompts import ChatPromptTemplate

        return ChatPromptTemplate.from_messages(
            [("system", SYSTEM_PROMPT), ("human", HUMAN_PROMPT)]
        )

    def inputs(
        self, sql: str, findings: Sequence[Finding], tables: Sequence[TableInfo]
    ) -> dict[str, str]:
        layout = [
            {
                "table": t.ref,
                "columns": [f"{name} {kind}" for name, kind in t.columns],
                "partitioned_by": t.partition_column,
                "clustered_by": list(t.cluster_columns),
            }
            for t in tables
        ]
        return {
            "query": quote_data("query", {"sql": sql}),
            "findings": quote_data("findings", [f.to_json() for f in findings]),
            "tables": quote_data("tables", layout),
        }

    def rewrite(
        self, sql: str, findings: Sequence[Finding], tables: Sequence[TableInfo]
    ) -> tuple[str | None, str]:
        """(candidate SQL or None, what happened) for the report."""
        if self.choice.model is None:
            return None, f"no LLM rewrite: {self.choice.label} ({self.choice.reason})"
        try:
            reply = structured_call(
                self.prompt(),
                self.choice.model,
                SqlRewrite,
                self.inputs(sql, findings, tables),
                timeout=self.timeout,
            )
        except LLMUnavailable as error:
            return None, f"no LLM rewrite: {self.choice.label} gave no usable answer ({error})"
        return reply.sql, f"{self.choice.label}: {' '.join(reply.explanation.split())[:300]}"
