"""Monitors derived, not hand-listed: what every asset gets without a line of configuration.

- every dbt model (staging, marts): value monitors on its numeric columns (`ColumnValues`),
  a mix monitor on its low-cardinality columns (`ColumnMix`), timestamp bounds
  (`TimestampBounds`); its day is its first date, else its parent's (dbt `relationships`);
  its key columns (dbt `unique`/`relationships` tests) are ids, not values;
- every raw table (`platform_core.raw.schema`): mix and timestamp bounds per day the data
  happened (events: their partition, the event's day; CDC: the commit time, `source_ts`),
  so a backlog that lands late counts on the day it belongs to, not on the day it caught up;
  the mix of a CDC table is the mix of its changes: snapshot reads (op 'r', the table as it
  stood when capture began) are not a day's changes, and with them in the window the
  shares of four weeks of days were compared with a day that was 70% snapshot (a
  re-snapshot shows as a spike of the table's volume instead);
- the CDC staging tables (models reading `raw.cdc_<table>`): the source table's NOT NULLs,
  CHECKs and enums from the catalog snapshot (`source_constraints`), and any model's dbt
  contract constraints, as `SourceConstraints`, keyed by the source's primary key.

Which columns are numeric or low-cardinality is decided by the rules from the warehouse's
real types and values at run time, so `make prepare` after adding a model or a column is
all it takes. `config.OVERRIDES` adjusts the few assets where the defaults do not fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from platform_assets.quality.manifest import Model, Project
from platform_assets.quality.source_constraints import table_constraints
from platform_assets.quality.specs import (
    AssetQuality,
    ColumnMix,
    ColumnValues,
    Constraint,
    DayColumn,
    Override,
    SourceConstraints,
    TimestampBounds,
)
from platform_core.raw.schema import RAW_TABLES

FAMILIES = ("values", "mix", "timestamps", "constraints")
CDC_CHANGES = "op <> 'r'"  # a CDC table's changes, without the snapshot reads


def derive_monitors(
    project: Project, catalog: dict[str, Any], overrides: Mapping[str, Override]
) -> dict[str, AssetQuality]:
    """Derived monitors of every raw table and dbt model, by asset key."""
    derived: dict[str, AssetQuality] = {}
    for name in RAW_TABLES:
        asset = f"raw/{name}"
        table = RAW_TABLES[name]
        day = "source_ts" if "source_ts" in table.column_names else table.partition_column
        changes = CDC_CHANGES if "op" in table.column_names else None
        derived[asset] = _raw_monitors(asset, day, changes, overrides.get(asset))
    for model in project.models.values():
        derived[model.asset] = _model_monitors(model, project, catalog, overrides.get(model.asset))
    return derived


def _apply(rule: Any, override: Override | None) -> Any:
    if override is None:
        return rule
    changes: dict[str, Any] = {}
    if override.severity is not None:
        changes["severity"] = override.severity
    if override.sensitivity is not None and hasattr(rule, "sensitivity"):
        changes["sensitivity"] = override.sensitivity
    return replace(rule, **changes)


def _wanted(family: str, override: Override | None) -> bool:
    if override is not None and set(override.skip) - set(FAMILIES):
        unknown = ", ".join(sorted(set(override.skip) - set(FAMILIES)))
        raise ValueError(f"unknown monitor families {unknown}; known: {', '.join(FAMILIES)}")
    return override is None or family not in override.skip


def _raw_monitors(
    asset: str, partition: str, where: str | None, override: Override | None
) -> AssetQuality:
    day = DayColumn(column=partition)
    exclude = override.exclude if override else ()
    where = override.where if override and override.where else where
    return AssetQuality(
        asset=asset,
        schema=None,  # the hand configuration owns schema changes
        mix=_apply(ColumnMix(day=day, exclude=exclude, where=where), override)
        if _wanted("mix", override)
        else None,
        timestamps=_apply(TimestampBounds(day=day, exclude=exclude), override)
        if _wanted("timestamps", override)
        else None,
    )


def _model_monitors(
    model: Model, project: Project, catalog: dict[str, Any], override: Override | None
) -> AssetQuality:
    day = DayColumn(
        column=override.day if override else None, parents=project.parents.get(model.asset, ())
    )
    keys = tuple(sorted(project.invariants.key_columns(model.asset)))
    exclude = keys + (override.exclude if override else ())
    where = override.where if override else None
    constraints = _constraints(model, project, catalog)
    return AssetQuality(
        asset=model.asset,
        schema=None,
        values=_apply(ColumnValues(day=day, exclude=exclude, where=where), override)
        if _wanted("values", override)
        else None,
        mix=_apply(ColumnMix(day=day, exclude=exclude, where=where), override)
        if _wanted("mix", override)
        else None,
        timestamps=_apply(
            TimestampBounds(day=day, exclude=override.exclude if override else ()), override
        )
        if _wanted("timestamps", override)
        else None,
        constraints=_apply(constraints, override)
        if constraints and _wanted("constraints", override)
        else None,
    )


def _constraints(
    model: Model, project: Project, catalog: dict[str, Any]
) -> SourceConstraints | None:
    """The source table's constraints on the columns this model has, and its contract's;
    minus what a dbt test of the model already checks (each invariant once)."""
    found: list[Constraint] = list(model.contract)
    key: tuple[str, ...] = ()
    for raw_table in model.raw_sources:
        if not raw_table.startswith("cdc_"):
            continue
        constraints, primary_key = table_constraints(catalog, raw_table.removeprefix("cdc_"))
        declared = set(model.columns)
        found += [c for c in constraints if not declared or set(c.columns) <= declared]
        key = key or tuple(k for k in primary_key if not declared or k in declared)
    left = tuple(c for c in found if not project.invariants.covers_constraint(model.asset, c))
    if not left:
        return None
    if not key:
        unique = [cols for a, cols in project.invariants.unique if a == model.asset]
        key = tuple(sorted(unique[0])) if unique else ()
    return SourceConstraints(constraints=left, key=key)
