"""The invariants the dbt project already tests, read from its manifest.

An invariant is checked once. Where a dbt test declares it (`unique`,
`unique_combination_of_columns`, `relationships`, `not_null`), the dbt test is the check: it
runs with the build, blocks what depends on it, and lives where analytics engineers edit the
model. The agent drops its own rule for the same invariant (`quality.config` asks
`Invariants`) and explains the dbt test's failures instead (`rule_for_dbt_test`: the test's
kind picks the agent's causes and actions for that kind of failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# dbt test name -> (agent rule, failure kind) whose causes explain it
DBT_TEST_RULES: dict[str, tuple[str, str]] = {
    "unique": ("duplicates", "duplicates"),
    "unique_combination_of_columns": ("duplicates", "duplicates"),
    "relationships": ("references", "orphans"),
    "not_null": ("null_rate", ""),
}
_REF = re.compile(r"""ref\(\s*['"]([\w]+)['"]\s*\)""")


@dataclass(frozen=True)
class Invariants:
    """What the dbt tests of one manifest check, by asset key (`staging/stg_orders`)."""

    unique: frozenset[tuple[str, frozenset[str]]]  # (asset, key columns)
    relationships: frozenset[tuple[str, str, str, str]]  # (asset, column, parent model, field)
    not_null: frozenset[tuple[str, str]]  # (asset, column)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Invariants:
        unique, relationships, not_null = set(), set(), set()
        nodes = manifest.get("nodes", {})
        for test in nodes.values():
            if test.get("resource_type") != "test" or not test.get("test_metadata"):
                continue
            model = nodes.get(test.get("attached_node") or "", {})
            asset = _asset_key(model)
            if asset is None:
                continue
            name = test["test_metadata"]["name"]
            kwargs = test["test_metadata"].get("kwargs") or {}
            column = test.get("column_name")
            if name == "unique" and column:
                unique.add((asset, frozenset([column])))
            elif name == "unique_combination_of_columns":
                unique.add((asset, frozenset(kwargs.get("combination_of_columns") or [])))
            elif name == "not_null" and column:
                not_null.add((asset, column))
            elif name == "relationships" and column:
                parent = _REF.search(str(kwargs.get("to", "")))
                if parent:
                    relationships.add((asset, column, parent.group(1), str(kwargs.get("field"))))
        return cls(frozenset(unique), frozenset(relationships), frozenset(not_null))

    @classmethod
    def from_path(cls, manifest_path: Path) -> Invariants:
        return cls.from_manifest(json.loads(manifest_path.read_text()))

    def covers_unique(self, asset: str, key: Iterable[str]) -> bool:
        return (asset, frozenset(key)) in self.unique

    def covers_relationship(self, asset: str, column: str, parent: str, field: str) -> bool:
        """`parent` is an asset key (`staging/stg_products`) or a model name."""
        return (asset, column, parent.split("/", 1)[-1], field) in self.relationships

    def covers_not_null(self, asset: str, column: str) -> bool:
        return (asset, column) in self.not_null


def _asset_key(model: dict[str, Any]) -> str | None:
    """The Dagster asset key of a dbt model, as the code location names it."""
    if model.get("resource_type") != "model":
        return None
    fqn = model.get("fqn") or []
    layer = "mart" if len(fqn) > 2 and fqn[1] == "marts" else "staging"
    return f"{layer}/{model['name']}"


def rule_for_dbt_test(
    check_name: str, test_names: Iterable[str] = DBT_TEST_RULES
) -> tuple[str, str]:
    """(agent rule, kind) that explains a dbt test from its check name
    (`unique_stg_orders_order_id`, `relationships_stg_order_items_...`), else ("dbt_test", "")."""
    for name in sorted(test_names, key=len, reverse=True):
        if check_name == name or check_name.startswith(f"{name}_"):
            return DBT_TEST_RULES[name]
    return ("dbt_test", "")
