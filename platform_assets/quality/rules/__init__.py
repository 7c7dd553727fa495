"""The deterministic rules. Each reads the warehouse with plain SQL and returns a CheckResult.

One module per kind of rule; `context` holds what they share. `evaluate_rule` dispatches a
rule spec (`platform_assets.quality.specs`) to its function.

- hand-configured: `freshness`, `volume`, `nulls`, `duplicates`, `schema`, `references`;
- derived from the dbt manifest, the raw schemas and the source's catalog: `values`
  (numeric columns), `mix` (low-cardinality columns), `timestamps` (future/ancient values),
  `validity` (the producer's constraints);
- across sources: `consistency` (events and the database agree per day).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from platform_assets.quality.results import CheckResult
from platform_assets.quality.rules.consistency import check_agreement, check_unmatched
from platform_assets.quality.rules.context import Memory, RuleContext
from platform_assets.quality.rules.duplicates import check_duplicates
from platform_assets.quality.rules.freshness import check_freshness
from platform_assets.quality.rules.mix import check_column_mix
from platform_assets.quality.rules.nulls import check_nulls
from platform_assets.quality.rules.references import check_references
from platform_assets.quality.rules.schema import check_schema
from platform_assets.quality.rules.timestamps import check_timestamp_bounds
from platform_assets.quality.rules.validity import check_source_constraints
from platform_assets.quality.rules.values import check_column_values
from platform_assets.quality.rules.volume import check_volume
from platform_assets.quality.specs import (
    Agreement,
    ColumnMix,
    ColumnValues,
    Duplicates,
    Freshness,
    NullRate,
    References,
    Rule,
    SchemaChange,
    SourceConstraints,
    TimestampBounds,
    Unmatched,
    Volume,
)

__all__ = ["RULES", "RULE_TYPES", "Memory", "RuleContext", "evaluate_rule"]

RULES: dict[type, Callable[[RuleContext, Any], CheckResult]] = {
    Freshness: check_freshness,
    Volume: check_volume,
    NullRate: check_nulls,
    Duplicates: check_duplicates,
    SchemaChange: check_schema,
    References: check_references,
    ColumnValues: check_column_values,
    ColumnMix: check_column_mix,
    TimestampBounds: check_timestamp_bounds,
    SourceConstraints: check_source_constraints,
    Agreement: check_agreement,
    Unmatched: check_unmatched,
}
RULE_TYPES: dict[type, str] = {
    Freshness: "freshness",
    Volume: "volume",
    NullRate: "null_rate",
    Duplicates: "duplicates",
    SchemaChange: "schema",
    References: "references",
    ColumnValues: "column_values",
    ColumnMix: "column_mix",
    TimestampBounds: "timestamp_bounds",
    SourceConstraints: "source_constraints",
    Agreement: "consistency",
    Unmatched: "consistency",
}


def evaluate_rule(ctx: RuleContext, rule: Rule) -> CheckResult:
    return RULES[type(rule)](ctx, rule)
