"""The invariants the dbt project already tests, read from its manifest.

An invariant is checked once. Where a dbt test declares it (`unique`,
`unique_combination_of_columns`, `relationships`, `not_null`, `not_negative`,
`accepted_range`, `accepted_values`), the dbt test is the check: it runs with the build,
blocks what depends on it, and lives where analytics engineers edit the model. The agent
drops its own rule for the same invariant (`monitors` asks `Invariants`, also for the
constraints the source database declares) and explains the dbt test's failures instead
(`rule_for_dbt_test`: the test's kind picks the agent's causes and actions for that kind
of failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platform_assets.quality.specs import Constraint

# dbt test name -> (agent rule, failure kind) whose causes explain it
DBT_TEST_RULES: dict[str, tuple[str, str]] = {
    "unique": ("duplicates", "duplicates"),
    "unique_combination_of_columns": ("duplicates", "duplicates"),
    "relationships": ("references", "orphans"),
    "not_null": ("null_rate", ""),
    "accepted_values": ("source_constraints", ""),
    "accepted_range": ("source_constraints", ""),
    "not_negative": ("source_constraints", ""),
}
_REF = re.compile(r"""ref\(\s*['"]([\w]+)['"]\s*\)""")


@dataclass(frozen=True)
class Bound:
    """What a range test checks on one column: `lower <= value <= upper` (None: open)."""

    lower: float | None
    upper: float | None
    lower_inclusive: bool = True
    upper_inclusive: bool = True


def asset_key(node: dict[str, Any]) -> str | None:
    """The Dagster asset key of a dbt model or seed, as the code location names it."""
    if node.get("resource_type") not in ("model", "seed"):
        return None
    fqn = node.get("fqn") or []
    layer = "mart" if len(fqn) > 2 and fqn[1] == "marts" else "staging"
    return f"{layer}/{node['name']}"


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Invariants:
    """What the dbt tests of one manifest check, by asset key (`staging/stg_orders`)."""

    unique: frozenset[tuple[str, frozenset[str]]]  # (asset, key columns)
    relationships: frozenset[tuple[str, str, str, str]]  # (asset, column, parent model, field)
    not_null: frozenset[tuple[str, str]]  # (asset, column)
    bounds: frozenset[tuple[str, str, Bound]] = frozenset()  # (asset, column, range)
    accepted: frozenset[tuple[str, str, frozenset[str]]] = frozenset()  # (asset, column, values)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Invariants:
        found: dict[str, set[Any]] = {
            k: set() for k in ("unique", "relationships", "not_null", "bounds", "accepted")
        }
        nodes = manifest.get("nodes", {})
        for test in nodes.values():
            if test.get("resource_type") != "test" or not test.get("test_metadata"):
                continue
            asset = asset_key(nodes.get(test.get("attached_node") or "", {}))
            if asset is not None:
                _collect(found, asset, test)
        return cls(**{k: frozenset(v) for k, v in found.items()})

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

    def key_columns(self, asset: str) -> set[str]:
        """Columns a test treats as keys (unique, relationships): identifiers, not values."""
        keys = {c for a, cols in self.unique if a == asset for c in cols}
        return keys | {c for a, c, _, _ in self.relationships if a == asset}

    def covers_constraint(self, asset: str, constraint: Constraint) -> bool:
        """Whether a dbt test already fails on every row that breaks `constraint`."""
        column = constraint.columns[0] if len(constraint.columns) == 1 else None
        if column is None:
            return False
        if constraint.kind == "not_null":
            return self.covers_not_null(asset, column)
        if constraint.kind == "accepted_values":
            allowed = frozenset(constraint.values)
            return any(a == asset and c == column and v <= allowed for a, c, v in self.accepted)
        if constraint.kind == "range":
            return any(
                a == asset and c == column and _implies(bound, constraint)
                for a, c, bound in self.bounds
            )
        return False


def _implies(test: Bound, constraint: Constraint) -> bool:
    """A value outside the constraint's range is outside the test's range too."""
    return _side_implies(
        test.lower, test.lower_inclusive, constraint.lower, constraint.lower_inclusive, +1
    ) and _side_implies(
        test.upper, test.upper_inclusive, constraint.upper, constraint.upper_inclusive, -1
    )


def _side_implies(
    test: float | None, test_inclusive: bool, bound: float | None, inclusive: bool, sign: int
) -> bool:
    if bound is None:
        return True
    if test is None:
        return False
    # lower side (sign +1): a violation is v < bound (or v <= bound when exclusive); the
    # test fails for v < test (or v <= test when exclusive)
    tighter = sign * (test - bound)
    if tighter > 0:
        return True
    return tighter == 0 and (inclusive or not test_inclusive)


def _collect(found: dict[str, set[Any]], asset: str, test: dict[str, Any]) -> None:
    name = test["test_metadata"]["name"]
    kwargs = test["test_metadata"].get("kwargs") or {}
    column = test.get("column_name")
    if name == "unique" and column:
        found["unique"].add((asset, frozenset([column])))
    elif name == "unique_combination_of_columns":
        found["unique"].add((asset, frozenset(kwargs.get("combination_of_columns") or [])))
    elif name == "not_null" and column:
        found["not_null"].add((asset, column))
    elif name == "relationships" and column:
        parent = _REF.search(str(kwargs.get("to", "")))
        if parent:
            found["relationships"].add((asset, column, parent.group(1), str(kwargs.get("field"))))
    elif name == "not_negative" and column:
        found["bounds"].add((asset, column, Bound(lower=0.0, upper=None)))
    elif name == "accepted_range" and column:
        inclusive = bool(kwargs.get("inclusive", True))
        bound = Bound(
            _number(kwargs.get("min_value")), _number(kwargs.get("max_value")), inclusive, inclusive
        )
        found["bounds"].add((asset, column, bound))
    elif name == "accepted_values" and column:
        found["accepted"].add((asset, column, frozenset(str(v) for v in kwargs.get("values", []))))


def rule_for_dbt_test(
    check_name: str, test_names: Iterable[str] = DBT_TEST_RULES
) -> tuple[str, str]:
    """(agent rule, kind) that explains a dbt test from its check name
    (`unique_stg_orders_order_id`, `relationships_stg_order_items_...`), else ("dbt_test", "")."""
    for name in sorted(test_names, key=len, reverse=True):
        if check_name == name or check_name.startswith(f"{name}_"):
            return DBT_TEST_RULES[name]
    return ("dbt_test", "")
