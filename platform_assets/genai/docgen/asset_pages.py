"""One page per asset: what it is, who owns it, its SLA, lineage, schema, checks, and what to
do when it is late or a check fails."""

from __future__ import annotations

import re

from platform_assets.genai.docgen.markdown import HEADER, code, link, mermaid, table
from platform_assets.genai.docgen.platform_graph import AssetDoc, PlatformDoc


def asset_path(key: str) -> str:
    return f"assets/{key}.md"


def ancestors(key: str, assets: dict[str, AssetDoc]) -> set[str]:
    seen: set[str] = set()
    stack = list(assets[key].parents)
    while stack:
        parent = stack.pop()
        if parent not in seen and parent in assets:
            seen.add(parent)
            stack.extend(assets[parent].parents)
    return seen


def lineage(asset: AssetDoc, assets: dict[str, AssetDoc]) -> str:
    """Everything upstream, the asset, and what reads it directly."""
    nodes = ancestors(asset.key, assets) | {asset.key} | set(asset.children)
    edges = [(p, n) for n in nodes for p in assets[n].parents if p in nodes]
    return mermaid(nodes, edges, focus=asset.key)


SLA_FIELDS = re.compile(r"\b(column|error_after|warn_after|relative_to)=([^,)]+)")


def _sla(asset: AssetDoc) -> str:
    lines = []
    if asset.freshness:
        lines.append(f"- Dagster freshness policy: {asset.freshness}.")
    for check in asset.checks:
        if "fresh" not in check.name:
            continue
        found = SLA_FIELDS.findall(check.config)
        fields = ", ".join(f"{k} {v.strip(chr(39))}" for k, v in found if v != "None")
        lines.append(f"- Check `{check.name}`: {fields or check.description}.")
    return "\n".join(lines) or "No freshness policy or freshness check is declared."


def _triggers_of(asset: AssetDoc, platform: PlatformDoc) -> list[str]:
    return sorted(
        f"{t.kind} `{t.name}` ({t.when})"
        for t in platform.triggers
        if set(t.targets) & set(asset.jobs)
    )


def _facts(asset: AssetDoc, platform: PlatformDoc, writers: list[str], here: str) -> str:
    rows: list[tuple[str, str]] = [
        ("Group", asset.group),
        ("Owner", ", ".join(asset.owners) or "not declared (set `owners` on the asset)"),
        ("Kinds", ", ".join(asset.kinds)),
        ("Partitions", asset.partitions or "none"),
    ]
    if asset.dbt:
        rows.append(("dbt model", f"{code(asset.dbt.path)} ({asset.dbt.materialized})"))
    if asset.table:
        layout = code(asset.table.relation)
        if asset.table.partition_by:
            layout += f", partitioned by {code(asset.table.partition_by)} (day)"
        if asset.table.cluster_by:
            layout += ", clustered by " + ", ".join(code(c) for c in asset.table.cluster_by)
        rows.append(("BigQuery table", layout))
    if writers:
        rows.append(("Written by", ", ".join(writers)))
    rows.append(
        ("Jobs", ", ".join(code(j) for j in asset.jobs) or "none (written outside Dagster)")
    )
    rows.append(("Triggers", ", ".join(_triggers_of(asset, platform)) or "none"))
    return table(("", ""), rows)


def _schema(asset: AssetDoc) -> str:
    if not asset.columns:
        return "No column schema is declared."
    return table(
        ("column", "type", "description", "tests"),
        ((code(c.name), c.type, c.description, ", ".join(c.tests)) for c in asset.columns),
    )


def _checks(asset: AssetDoc) -> str:
    if not asset.checks:
        return "No asset checks."
    return table(
        ("check", "blocking", "what it checks", "configuration"),
        (
            (code(c.name), "yes" if c.blocking else "no", c.description, c.config)
            for c in asset.checks
        ),
    )


def _troubleshooting(asset: AssetDoc, module: str, here: str) -> list[str]:
    select = f"--select '{asset.key}'"
    partition = " --partition YYYY-MM-DD" if asset.partitions else ""
    steps = []
    if asset.parents:
        upstream = ", ".join(link(asset_path(p), p, here) for p in asset.parents)
        steps.append(f"Late or wrong? Look upstream first: {upstream}.")
    if asset.jobs:
        steps.append(
            "Re-materialize it: `uv run dagster asset materialize -m "
            f"{module} {select}{partition}` (or from the Dagster UI)."
        )
    else:
        steps.append(
            "It is written outside Dagster: check that the writing process is running and "
            "what it dead-lettered (see the pipeline pages)."
        )
    if asset.dbt:
        name = asset.dbt.unique_id.rpartition(".")[2]
        steps.append(
            "Build the model alone: `uv run dbt build --project-dir dbt_project "
            f"--profiles-dir dbt_project --select {name}`."
        )
    blocking = [c.name for c in asset.checks if c.blocking]
    if blocking:
        names = ", ".join(code(b) for b in blocking)
        steps.append(
            f"A failed blocking check ({names}) stops what is downstream in the same run: "
            "fix the data upstream, then re-materialize."
        )
    if asset.checks:
        steps.append(
            "A failed check's metadata in the Dagster UI shows the metric, the expected range "
            "and sample rows; the data-quality agent's narrative explains likely causes."
        )
    if asset.children:
        downstream = ", ".join(link(asset_path(c), c, here) for c in asset.children)
        steps.append(f"After a fix, refresh what reads it: {downstream}.")
    return [f"- {step}" for step in steps]


def asset_page(asset: AssetDoc, platform: PlatformDoc, module: str, writers: list[str]) -> str:
    here = asset_path(asset.key)
    parts = [
        HEADER,
        f"# {asset.key}",
        asset.description or "No description.",
        _facts(asset, platform, writers, here),
        "## SLA",
        _sla(asset),
        "## Lineage",
        lineage(asset, platform.assets),
        "## Schema",
        _schema(asset),
        "## Checks",
        _checks(asset),
        "## Troubleshooting",
        "\n".join(_troubleshooting(asset, module, here)),
        link("index.md", "All assets and pipelines", here),
    ]
    return "\n\n".join(parts) + "\n"
