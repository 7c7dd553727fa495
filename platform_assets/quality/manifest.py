"""What the derived monitors need from the dbt manifest: the models, what they read, what
their tests say about keys and links, and what their contracts promise.

Read once when the code location loads (the manifest `make prepare` writes): a model added
to the dbt project is an asset with monitors after the next `make prepare`, without a change
here. Column types are not needed from dbt: the rules read them from the warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_assets.quality.dbt_tests import Invariants, asset_key
from platform_assets.quality.specs import Constraint, ParentDay


@dataclass(frozen=True)
class Model:
    asset: str  # staging/stg_orders
    name: str
    columns: tuple[str, ...]  # as declared in the model's yml (may be empty)
    raw_sources: tuple[str, ...]  # raw tables it reads directly (cdc_orders)
    contract: tuple[Constraint, ...] = ()


@dataclass(frozen=True)
class Project:
    models: dict[str, Model]
    invariants: Invariants
    parents: dict[str, tuple[ParentDay, ...]] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> Project:
        invariants = Invariants.from_manifest(manifest)
        models = {
            m.asset: m
            for node in manifest.get("nodes", {}).values()
            if node.get("resource_type") == "model"
            for m in [_model(node)]
        }
        names = {m.name: m.asset for m in models.values()}
        parents: dict[str, list[ParentDay]] = {}
        for asset, column, parent, parent_column in sorted(invariants.relationships):
            if parent in names:
                parents.setdefault(asset, []).append(
                    ParentDay(column=column, parent=names[parent], parent_column=parent_column)
                )
        return cls(models, invariants, {k: tuple(v) for k, v in parents.items()})

    @classmethod
    def from_path(cls, manifest_path: Path) -> Project:
        return cls.from_manifest(json.loads(manifest_path.read_text()))

    def reading(self, raw_table: str) -> list[Model]:
        """Models that read a raw table directly (the CDC staging tables of a source table)."""
        return [m for m in self.models.values() if raw_table in m.raw_sources]


def _model(node: dict[str, Any]) -> Model:
    asset = asset_key(node)
    assert asset is not None
    sources = tuple(
        dep.rsplit(".", 1)[-1]
        for dep in (node.get("depends_on") or {}).get("nodes", [])
        if dep.startswith("source.") and ".raw." in dep
    )
    return Model(
        asset=asset,
        name=node["name"],
        columns=tuple(node.get("columns") or {}),
        raw_sources=sources,
        contract=tuple(_contract(node)),
    )


def _contract(node: dict[str, Any]) -> Iterable[Constraint]:
    """Constraints a model's dbt contract declares: `not_null` and `check` (expression)."""
    if not (node.get("contract") or node.get("config", {}).get("contract") or {}).get("enforced"):
        return
    for column, spec in (node.get("columns") or {}).items():
        for item in spec.get("constraints") or []:
            found = _constraint(item, (column,), f"{node['name']}.{column}")
            if found:
                yield found
    for index, item in enumerate(node.get("constraints") or []):
        found = _constraint(item, tuple(item.get("columns") or ()), f"{node['name']}#{index}")
        if found:
            yield found


def _constraint(item: dict[str, Any], columns: tuple[str, ...], where: str) -> Constraint | None:
    kind = item.get("type")
    name = item.get("name") or f"contract {kind} {where}"
    if kind == "not_null" and len(columns) == 1:
        return Constraint(
            name=name,
            kind="not_null",
            columns=columns,
            expression=f"{columns[0]} is not null",
            origin="dbt contract",
            definition="not null",
        )
    if kind == "check" and item.get("expression"):
        expression = str(item["expression"]).strip()
        return Constraint(
            name=name,
            kind="expression",
            columns=columns,
            expression=expression,
            origin="dbt contract",
            definition=f"check ({expression})",
        )
    return None
