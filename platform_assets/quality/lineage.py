"""What the narrator is told about a failing check's lineage.

Its neighbours upstream and downstream (latest materialization, failing checks), and its
likely origin: the most upstream asset among its failing ancestors, the one the narrative
names as where the problem most likely starts. Read from the Dagster instance when a check
fails (never for passing checks), and quoted into the prompt as data.

No `from __future__ import annotations` here: Dagster inspects the context annotations.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from platform_assets.quality.results import jsonable

MAX_NEIGHBOURS = 8
MAX_ANCESTORS = 40


def _graph(context: dg.AssetCheckExecutionContext) -> Any:
    try:
        return context.repository_def.asset_graph
    except Exception:  # dg.materialize() runs have no repository: the job's graph will do
        return context.job_def.asset_layer.asset_graph


def latest_checks(instance: dg.DagsterInstance, graph: Any, key: dg.AssetKey) -> list[dict]:
    """The latest verdict of each check of an asset."""
    checks = []
    for check_key in sorted(graph.get_check_keys_for_assets({key}), key=lambda k: k.name):
        record = instance.get_latest_asset_check_evaluation_record(check_key)
        evaluation = record.event.asset_check_evaluation if record and record.event else None
        if evaluation is None:
            continue
        checks.append(
            {
                "check": check_key.name,
                "status": "passed" if evaluation.passed else "failed",
                "severity": evaluation.severity.value,
            }
        )
    return checks


def _neighbour(instance: dg.DagsterInstance, graph: Any, key: dg.AssetKey) -> dict[str, Any]:
    entry: dict[str, Any] = {"asset": key.to_user_string()}
    event = instance.get_latest_materialization_event(key)
    if event is not None:
        entry["last_materialized_at"] = datetime.fromtimestamp(event.timestamp, UTC)
        entry["last_run_id"] = event.run_id or "(reported, no run)"
    checks = latest_checks(instance, graph, key)
    failing = [c for c in checks if c["status"] == "failed"]
    entry["checks"] = (
        failing[:6] or [{"check": "all", "status": "passed", "count": len(checks)}]
        if checks
        else []
    )
    return entry


def _ancestors(graph: Any, key: dg.AssetKey) -> dict[dg.AssetKey, set[dg.AssetKey]]:
    """Every ancestor of `key` (up to MAX_ANCESTORS) with its own parents."""
    found: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    stack = list(graph.get(key).parent_keys)
    while stack and len(found) < MAX_ANCESTORS:
        parent = stack.pop()
        if parent in found or not graph.has(parent):
            continue
        found[parent] = set(graph.get(parent).parent_keys)
        stack.extend(found[parent])
    return found


def likely_origin(
    instance: dg.DagsterInstance, graph: Any, key: dg.AssetKey
) -> dict[str, Any] | None:
    """The most upstream ancestor with failing checks (fewest ancestors of its own)."""
    ancestors = _ancestors(graph, key)
    failing = {
        a: [c["check"] for c in latest_checks(instance, graph, a) if c["status"] == "failed"]
        for a in ancestors
    }
    failing = {a: checks for a, checks in failing.items() if checks}
    if not failing:
        return None

    def upstream_of(asset: dg.AssetKey) -> set[dg.AssetKey]:
        seen, stack = set(), list(ancestors.get(asset, ()))
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                stack.extend(ancestors.get(parent, ()))
        return seen

    roots = [a for a in failing if not (upstream_of(a) & set(failing))]
    origin = min(roots, key=lambda a: (len(upstream_of(a)), a.to_user_string()))
    return {"asset": origin.to_user_string(), "checks": failing[origin][:6]}


def lineage_context(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> dict[str, Any]:
    """Upstream and downstream neighbours with their latest materialization and checks, and
    the likely origin among the failing ancestors."""
    graph = _graph(context)
    instance = context.instance
    out: dict[str, Any] = {"asset": key.to_user_string(), "upstream": [], "downstream": []}
    if not graph.has(key):
        return out
    node = graph.get(key)
    for side, keys in (("upstream", node.parent_keys), ("downstream", node.child_keys)):
        for neighbour in sorted(keys, key=lambda k: k.to_user_string())[:MAX_NEIGHBOURS]:
            out[side].append(_neighbour(instance, graph, neighbour))
    origin = likely_origin(instance, graph, key)
    if origin is not None:
        out["likely_origin"] = origin
    return jsonable(out)
