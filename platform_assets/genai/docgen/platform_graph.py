"""The platform as its definitions declare it: Dagster's asset graph and the dbt project.

Loaded from the code location module named in pyproject's `[tool.dagster]` (whatever the
modules are called, the graph is the graph), the dbt manifest `make prepare` writes, and
the project's BigQuery rendering (partitioning, clustering, column types read off the
compiled SQL). Everything comes out as plain, sorted records for the page renderers.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CheckDoc:
    name: str
    blocking: bool
    description: str
    config: str = ""  # the check's declared metadata (e.g. a quality rule's settings)


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    type: str
    description: str
    tests: tuple[str, ...] = ()


@dataclass
class DbtDoc:
    unique_id: str
    path: str
    materialized: str
    tags: tuple[str, ...]
    tests: tuple[str, ...]  # model-level tests


@dataclass(frozen=True)
class TableLayout:
    """The asset's BigQuery table."""

    relation: str  # dataset.table
    partition_by: str | None
    cluster_by: tuple[str, ...]


@dataclass
class AssetDoc:
    key: str
    group: str
    description: str
    owners: tuple[str, ...]
    kinds: tuple[str, ...]
    parents: tuple[str, ...]
    children: tuple[str, ...]
    partitions: str | None
    freshness: str | None
    checks: list[CheckDoc] = field(default_factory=list)
    columns: list[ColumnDoc] = field(default_factory=list)
    jobs: tuple[str, ...] = ()
    dbt: DbtDoc | None = None
    table: TableLayout | None = None


@dataclass(frozen=True)
class JobDoc:
    name: str
    description: str
    assets: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TriggerDoc:
    name: str
    kind: str  # schedule | sensor
    when: str  # cron or minimum interval
    status: str
    targets: tuple[str, ...]
    description: str


@dataclass
class PlatformDoc:
    assets: dict[str, AssetDoc]
    jobs: list[JobDoc]
    triggers: list[TriggerDoc]
    analyses: list[tuple[str, str, str]]  # (name, path, description)


def code_location_module(root: Path) -> str:
    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]


def load_definitions(module: str) -> Any:
    import dagster as dg

    loaded = importlib.import_module(module)
    found = [v for v in vars(loaded).values() if isinstance(v, dg.Definitions)]
    if not found:
        raise RuntimeError(f"{module} defines no dagster.Definitions")
    return found[0]


def _duration(window: Any) -> str:
    if window is None:
        return ""
    seconds = int(timedelta(days=window.days, seconds=window.seconds).total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def freshness_text(policy: Any) -> str | None:
    if policy is None:
        return None
    fail = _duration(getattr(policy, "fail_window", None))
    warn = _duration(getattr(policy, "warn_window", None))
    if not fail:
        return type(policy).__name__
    return f"fails when the latest materialization is older than {fail}" + (
        f", warns after {warn}" if warn else ""
    )


def _columns(node: Any, tests: dict[str, list[str]], types: dict[str, str]) -> list[ColumnDoc]:
    value = node.metadata.get("dagster/column_schema")
    columns = getattr(value, "schema", value).columns if value is not None else []
    return [
        ColumnDoc(
            c.name,
            types.get(c.name) or (c.type if c.type not in ("?", None) else ""),
            " ".join((c.description or "").split()),
            tuple(sorted(tests.get(c.name, []))),
        )
        for c in columns
    ]


TIMEDELTA = re.compile(r"datetime\.timedelta\(([^)]*)\)")


def _timedelta_text(match: re.Match[str]) -> str:
    parts = dict(p.strip().split("=") for p in match.group(1).split(",") if "=" in p)
    window = timedelta(**{k: float(v) for k, v in parts.items()})
    return _duration(window)


def _config(metadata: dict[str, Any]) -> str:
    texts = []
    for name, value in sorted(metadata.items()):
        text = str(getattr(value, "text", value))
        if len(text) <= 400:
            texts.append(f"{name}: {TIMEDELTA.sub(_timedelta_text, text)}")
    return "; ".join(texts)


def _checks(graph: Any, key: Any, is_dbt: bool) -> list[CheckDoc]:
    specs = [graph.get_check_spec(k) for k in graph.asset_check_keys if k.asset_key == key]
    checks = [
        CheckDoc(
            spec.name,
            bool(spec.blocking),
            " ".join((spec.description or "").split()) or ("dbt data test" if is_dbt else ""),
            _config(dict(spec.metadata or {})),
        )
        for spec in specs
    ]
    return sorted(checks, key=lambda c: c.name)


def _dbt_tests(manifest: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Per model unique_id: test names per column ('' for model-level tests)."""
    found: dict[str, dict[str, list[str]]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("attached_node"):
            continue
        name = (node.get("test_metadata") or {}).get("name") or node["name"]
        column = node.get("column_name") or ""
        found.setdefault(node["attached_node"], {}).setdefault(column, []).append(name)
    return found


def _dbt_doc(node: dict[str, Any], tests: dict[str, list[str]]) -> DbtDoc:
    config = node.get("config") or {}
    return DbtDoc(
        unique_id=node["unique_id"],
        path=f"dbt_project/{node['original_file_path']}",
        materialized=config.get("materialized") or "",
        tags=tuple(sorted(node.get("tags") or [])),
        tests=tuple(sorted(tests.get("", []))),
    )


def _layout(table: Any) -> TableLayout | None:
    if table is None:
        return None
    return TableLayout(table.ref, table.partition_column, tuple(table.cluster_columns))


def _unique_id(node: Any) -> str | None:
    value = node.metadata.get("dagster_dbt/unique_id")
    return None if value is None else str(getattr(value, "value", value))


def collect(defs: Any, manifest: dict[str, Any], bigquery: Any) -> PlatformDoc:
    """`bigquery`: the optimizer's WarehouseSchema of the project's BigQuery rendering."""
    graph = defs.resolve_asset_graph()
    dbt_tests = _dbt_tests(manifest)
    tables = bigquery.tables  # by (dataset, table): the asset key's first and last parts
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    job_assets = {
        job.name: sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
        for job in jobs
    }
    assets: dict[str, AssetDoc] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        name = key.to_user_string()
        dbt_node = manifest["nodes"].get(_unique_id(node) or "")
        table = tables.get((key.path[0], key.path[-1]))
        tests = dbt_tests.get(dbt_node["unique_id"], {}) if dbt_node else {}
        types = dict(table.columns) if table else {}
        assets[name] = AssetDoc(
            key=name,
            group=node.group_name or "default",
            description=" ".join((dbt_node or {}).get("description", "").split())
            or first_line_block(node.description),
            owners=tuple(sorted(node.owners or ())),
            kinds=tuple(sorted(node.kinds or ())),
            parents=tuple(sorted(k.to_user_string() for k in node.parent_keys)),
            children=tuple(sorted(k.to_user_string() for k in node.child_keys)),
            partitions=str(node.partitions_def) if node.partitions_def else None,
            freshness=freshness_text(node.freshness_policy),
            checks=_checks(graph, key, dbt_node is not None),
            columns=_columns(node, tests, {k: v for k, v in types.items() if v != "UNKNOWN"}),
            jobs=tuple(sorted(j for j, keys in job_assets.items() if name in keys)),
            dbt=_dbt_doc(dbt_node, tests) if dbt_node else None,
            table=_layout(table),
        )
    return PlatformDoc(assets, _jobs(jobs, job_assets), _triggers(defs), _analyses(manifest))


def first_line_block(text: str | None) -> str:
    """A Dagster description up to any generated block (dagster-dbt appends raw SQL)."""
    if not text:
        return ""
    return " ".join(text.split("####")[0].split())


def _jobs(jobs: list[Any], job_assets: dict[str, list[str]]) -> list[JobDoc]:
    return sorted(
        (
            JobDoc(
                job.name,
                " ".join((job.description or "").split()),
                tuple(job_assets[job.name]),
                tuple(sorted(job.tags.items())),
            )
            for job in jobs
        ),
        key=lambda j: j.name,
    )


def _triggers(defs: Any) -> list[TriggerDoc]:
    triggers = []
    for schedule in defs.schedules or []:
        resolved = defs.resolve_schedule_def(schedule.name)
        triggers.append(
            TriggerDoc(
                resolved.name, "schedule", f"cron `{resolved.cron_schedule}`",
                resolved.default_status.value.lower(), (resolved.job_name,),
                " ".join((resolved.description or "").split()),
            )
        )  # fmt: skip
    for sensor in defs.sensors or []:
        targets = tuple(
            "an asset selection" if t.job_name.startswith("__") else t.job_name
            for t in (sensor.targets if sensor.has_jobs else [])
        )
        triggers.append(
            TriggerDoc(
                sensor.name, "sensor", f"every {sensor.minimum_interval_seconds} s at most",
                sensor.default_status.value.lower(), targets,
                " ".join((sensor.description or "").split()),
            )
        )  # fmt: skip
    return sorted(triggers, key=lambda t: (t.kind, t.name))


def _leading_comment(sql: str) -> str:
    lines = [line.strip() for line in sql.strip().splitlines()]
    comment = []
    for line in lines:
        if not line.startswith("--"):
            break
        comment.append(line.lstrip("- "))
    return " ".join(comment)


def _analyses(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted(
        (
            n["name"],
            f"dbt_project/{n['original_file_path']}",
            " ".join((n.get("description") or "").split()) or _leading_comment(n["raw_code"]),
        )
        for n in manifest["nodes"].values()
        if n["resource_type"] == "analysis"
    )
