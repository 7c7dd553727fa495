"""What the agent checks: the hand configuration, plus the derived monitors, minus what a
dbt test already checks.

`ASSETS` is computed when the code location loads, from the dbt manifest (`make prepare`),
the raw schemas and the source-constraint snapshot: every raw table and every dbt model is
there, with the rules of `config.CONFIGURED`, the monitors `derive.py` gives it, and the
cross-source rules of `config.CONSISTENCY` it owns. Invariants a dbt test declares are
checked by the dbt test alone (each invariant once): the agent's rule for it is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from platform_assets.dbt.project import dbt_project
from platform_assets.quality.config import CONFIGURED, CONSISTENCY, OVERRIDES
from platform_assets.quality.dbt_tests import Invariants
from platform_assets.quality.derive import derive_monitors
from platform_assets.quality.manifest import Project
from platform_assets.quality.source_constraints import load_snapshot
from platform_assets.quality.specs import Agreement, AssetQuality, Unmatched


def without_dbt_invariants(asset: AssetQuality, invariants: Invariants) -> AssetQuality:
    """The asset's rules minus those a dbt test already checks: zero-tolerance duplicates
    (`unique`), references (`relationships`) and whole-table nulls (`not_null`). Baselined
    rules (a rate against its history) are different checks and stay."""
    duplicates = asset.duplicates
    if (
        duplicates
        and not duplicates.baseline
        and invariants.covers_unique(asset.asset, duplicates.key)
    ):
        duplicates = None
    nulls = asset.nulls
    if nulls and nulls.date_column is None and nulls.max_rate == 0:
        left = tuple(c for c in nulls.columns if not invariants.covers_not_null(asset.asset, c))
        nulls = replace(nulls, columns=left) if left else None
    references = tuple(
        r
        for r in asset.references
        if not invariants.covers_relationship(asset.asset, r.column, r.parent, r.parent_column)
    )
    return replace(asset, duplicates=duplicates, nulls=nulls, references=references)


def merge(
    configured: AssetQuality | None, derived: AssetQuality | None, asset: str
) -> AssetQuality:
    """One asset's rules: the hand-configured ones with the derived monitors added."""
    base = configured or AssetQuality(asset=asset)
    if derived is None:
        return base
    return replace(
        base,
        values=base.values or derived.values,
        mix=base.mix or derived.mix,
        timestamps=base.timestamps or derived.timestamps,
        constraints=base.constraints or derived.constraints,
    )


def assemble(
    project: Project,
    configured: Mapping[str, AssetQuality],
    derived: Mapping[str, AssetQuality],
    consistency: Iterable[tuple[str, Agreement | Unmatched]],
) -> dict[str, AssetQuality]:
    owned: dict[str, list[Agreement | Unmatched]] = {}
    for asset, rule in consistency:
        owned.setdefault(asset, []).append(rule)
    assets = {}
    for key in sorted(set(configured) | set(derived)):
        merged = merge(configured.get(key), derived.get(key), key)
        merged = replace(merged, consistency=merged.consistency + tuple(owned.get(key, ())))
        assets[key] = without_dbt_invariants(merged, project.invariants)
    return assets


def build_monitors(project: Project) -> dict[str, AssetQuality]:
    return assemble(
        project, CONFIGURED, derive_monitors(project, load_snapshot(), OVERRIDES), CONSISTENCY
    )


PROJECT = Project.from_path(dbt_project.manifest_path)
ASSETS: dict[str, AssetQuality] = build_monitors(PROJECT)


def asset_quality(asset: str) -> AssetQuality:
    try:
        return ASSETS[asset]
    except KeyError:
        raise KeyError(f"no quality rules for {asset!r}; known: {', '.join(ASSETS)}") from None


def select_assets(keys: list[str] | None = None) -> list[AssetQuality]:
    """The monitored assets, all of them or those named (exact keys or `layer/*`)."""
    if not keys:
        return list(ASSETS.values())
    chosen: list[AssetQuality] = []
    for key in keys:
        key = key.strip().strip("/")
        if key.endswith("/*") or key in ("raw", "staging", "mart"):
            layer = key.removesuffix("/*")
            chosen += [a for a in ASSETS.values() if a.layer == layer and a not in chosen]
        else:
            found = asset_quality(key)
            if found not in chosen:
                chosen.append(found)
    return chosen
