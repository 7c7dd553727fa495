"""Pipeline pages (code packages that move data, dbt, Dagster) and the index page."""

from __future__ import annotations

from collections import defaultdict

from platform_assets.genai.docgen.asset_pages import asset_path
from platform_assets.genai.docgen.code_index import ModuleDoc
from platform_assets.genai.docgen.markdown import HEADER, code, link, mermaid, table
from platform_assets.genai.docgen.platform_graph import AssetDoc, PlatformDoc


def pipeline_packages(modules: list[ModuleDoc]) -> dict[str, list[ModuleDoc]]:
    """Packages whose modules serve HTTP, run Beam or speak Kafka, with all their modules."""
    by_package: dict[str, list[ModuleDoc]] = defaultdict(list)
    for module in modules:
        by_package[module.package].append(module)
    return {
        package: members
        for package, members in sorted(by_package.items())
        if any(m.routes or m.transforms or m.steps or m.uses_kafka for m in members)
    }


def package_summary(name: str, members: list[ModuleDoc]) -> str:
    """The package's docstring, else that of its module that serves, runs Beam or Kafka."""
    init = next((m.summary for m in members if m.name == name and m.summary), "")
    lead = next(
        (m.summary for m in members if m.summary and (m.routes or m.transforms or m.uses_kafka)),
        "",
    )
    return init or lead or "No package docstring."


def pipeline_path(name: str) -> str:
    return f"pipelines/{name}.md"


def role(members: list[ModuleDoc]) -> str:
    if any(m.routes for m in members):
        return "HTTP"
    if any(m.transforms or m.steps for m in members):
        return "Beam"
    return "Kafka"


def raw_writers(key: str, pipelines: dict[str, list[ModuleDoc]], here: str) -> list[str]:
    """Which pipelines land a raw table: CDC tables come through Kafka, the rest through
    HTTP; both through Beam (raw is written outside Dagster)."""
    if not key.startswith("raw/"):
        return []
    wanted = ("Kafka", "Beam") if key.startswith("raw/cdc_") else ("HTTP", "Beam")
    return [
        link(pipeline_path(name), name, here)
        for name, members in pipelines.items()
        if role(members) in wanted
    ]


def _fed_assets(members: list[ModuleDoc], assets: dict[str, AssetDoc]) -> list[str]:
    kind = role(members)
    return sorted(
        key
        for key in assets
        if key.startswith("raw/")
        and (kind == "Beam" or (kind == "Kafka") == key.startswith("raw/cdc_"))
    )


def code_pipeline_page(name: str, members: list[ModuleDoc], assets: dict[str, AssetDoc]) -> str:
    here = pipeline_path(name)
    parts = [HEADER, f"# Pipeline: {name}", package_summary(name, members)]
    entry = [
        f"`uv run python -m {m.name.removesuffix('.__main__')}`" for m in members if m.runnable
    ]
    if entry:
        parts += ["## Entry points", "\n".join(f"- {e}" for e in sorted(set(entry)))]
    routes = [r for m in members for r in m.routes]
    if routes:
        parts += [
            "## HTTP routes",
            table(
                ("method", "path", "summary", "handler"),
                ((r.method, code(r.path), r.summary, code(r.handler)) for r in routes),
            ),
        ]
    transforms = [(m.name, t) for m in members for t in m.transforms]
    if transforms:
        parts += [
            "## Beam transforms",
            table(
                ("transform", "module", "what it does"),
                ((code(t.name), code(mod), t.summary) for mod, t in transforms),
            ),
        ]
    steps = [(m.name, s) for m in members for s in m.steps]
    if steps:
        parts += [
            "## Pipeline steps (labels as in the Beam graph)",
            "\n".join(f"- `{s}` ({code(mod)})" for mod, s in steps),
        ]
    fed = _fed_assets(members, assets)
    if fed:
        parts += ["## Feeds", ", ".join(link(asset_path(k), k, here) for k in fed)]
        parts += [
            "## Data flow",
            mermaid([f"pipeline {name}", *fed], [(f"pipeline {name}", k) for k in fed]),
        ]
    parts += [
        "## Modules",
        table(
            ("module", "path", "summary"),
            ((code(m.name), code(m.path), m.summary) for m in members),
        ),
    ]
    parts += ["## Classes and functions", _symbols(members)]
    parts += [
        "## Troubleshooting",
        "\n".join(_pipeline_troubleshooting(members, fed, assets, here)),
    ]
    parts.append(link("index.md", "All assets and pipelines", here))
    return "\n\n".join(parts) + "\n"


def _symbols(members: list[ModuleDoc]) -> str:
    rows = [(code(m.name), code(s.name), s.kind, s.summary) for m in members for s in m.symbols]
    return table(("module", "name", "kind", "summary"), rows) if rows else "None."


def _pipeline_troubleshooting(
    members: list[ModuleDoc], fed: list[str], assets: dict[str, AssetDoc], here: str
) -> list[str]:
    steps = []
    runnable = sorted({m.name.removesuffix(".__main__") for m in members if m.runnable})
    if runnable:
        steps.append(
            "Is it running? Its entry points: " + ", ".join(code(r) for r in runnable) + "."
        )
    checks = sorted(
        {
            (k, c.name)
            for k in fed
            for c in assets[k].checks
            if "fresh" in c.name or "volume" in c.name
        }
    )
    if checks:
        listed = ", ".join(f"{link(asset_path(k), k, here)} `{c}`" for k, c in checks)
        steps.append(f"The checks that notice it first: {listed}.")
    if any(m.routes for m in members):
        steps.append("`GET /readyz` says whether it can deliver; `GET /metrics` has its counters.")
    if any(m.uses_kafka for m in members):
        steps.append(
            "Unreadable records go to the dead-letter topic with the error in their headers; "
            "offsets are committed only after the downstream write, so a restart replays."
        )
    steps.append("Every module above states its guarantees in its docstring: start there.")
    return [f"- {s}" for s in steps]


def dbt_page(platform: PlatformDoc) -> str:
    here = pipeline_path("dbt")
    models = [a for a in platform.assets.values() if a.dbt]
    rows = [
        (
            link(asset_path(a.key), a.key, here), a.dbt.materialized if a.dbt else "",
            code(a.table.partition_by or "") if a.table else "",
            ", ".join(a.table.cluster_by) if a.table else "", a.description,
        )
        for a in models
    ]  # fmt: skip
    parts = [
        HEADER,
        "# Pipeline: dbt (staging and marts)",
        "Models turn raw into staging (deduplicated, typed, current state) and marts. "
        "The same models build in DuckDB locally and in BigQuery in production.",
        "## Models",
        table(("asset", "materialized", "partitioned by", "clustered by", "description"), rows),
        "## Analyses",
        table(
            ("analysis", "path", "question"),
            ((code(n), code(p), d) for n, p, d in platform.analyses),
        ),
        "## Troubleshooting",
        "- Compile: `uv run dbt compile --project-dir dbt_project --profiles-dir dbt_project`.\n"
        "- One model and its tests: `uv run dbt build --project-dir dbt_project --profiles-dir "
        "dbt_project --select <model>`.\n"
        "- Cost and rewrites of every model and analysis: `uv run sql-optimizer audit`.",
        link("index.md", "All assets and pipelines", here),
    ]
    return "\n\n".join(parts) + "\n"


def dagster_page(platform: PlatformDoc, module: str) -> str:
    here = pipeline_path("dagster")
    assets = platform.assets
    edges = [(p, k) for k, a in assets.items() for p in a.parents if p in assets]
    parts = [
        HEADER,
        "# Pipeline: Dagster orchestration",
        f"The code location `{module}`: every table is an asset; jobs, schedules and sensors "
        "below decide when they refresh; asset checks judge them.",
        "## Asset graph",
        mermaid(assets, edges, groups={k: a.group for k, a in assets.items()}),
        "## Jobs",
        table(
            ("job", "assets", "tags", "description"),
            (
                (
                    code(j.name),
                    len(j.assets),
                    ", ".join(f"{k}={v}" for k, v in j.tags),
                    j.description,
                )
                for j in platform.jobs
            ),
        ),
        "## Schedules and sensors",
        table(
            ("name", "kind", "when", "default status", "runs", "description"),
            (
                (code(t.name), t.kind, t.when, t.status, ", ".join(t.targets), t.description)
                for t in platform.triggers
            ),
        ),
        "## Troubleshooting",
        "- Open it: `make ui` (Dagster UI), or "
        f"`uv run dagster definitions validate -m {module}`.\n"
        "- A sensor or schedule that should run but does not: check its status in the UI "
        "(default statuses are above) and the daemon's log.\n"
        "- Runs that open the local warehouse queue one at a time (tag `platform/warehouse`).",
        link("index.md", "All assets and pipelines", here),
    ]
    return "\n\n".join(parts) + "\n"


def index_page(
    platform: PlatformDoc, pipelines: dict[str, list[ModuleDoc]], modules: list[ModuleDoc]
) -> str:
    here = "index.md"
    pipeline_rows = [
        (link(pipeline_path(n), n, here), role(m), package_summary(n, m))
        for n, m in pipelines.items()
    ]
    pipeline_rows += [
        (link(pipeline_path("dbt"), "dbt", here), "SQL", "Staging and mart models."),
        (
            link(pipeline_path("dagster"), "dagster", here),
            "orchestration",
            "Assets, jobs, schedules, sensors, checks.",
        ),
    ]
    asset_rows = [
        (
            link(asset_path(a.key), a.key, here), a.group, ", ".join(a.owners),
            "yes" if a.freshness or any("fresh" in c.name for c in a.checks) else "",
            len(a.checks), a.description,
        )
        for a in platform.assets.values()
    ]  # fmt: skip
    packages = sorted({m.package for m in modules} - set(pipelines))
    summaries = {m.name: m.summary for m in modules}
    parts = [
        HEADER,
        "# Platform documentation",
        "Generated from the code (Python AST), the dbt manifest and the Dagster definitions: "
        "`make docs` regenerates it, `make docs-check` (part of `make test`) fails when a "
        "page is stale.",
        "## Pipelines",
        table(("pipeline", "kind", "summary"), pipeline_rows),
        "## Assets",
        table(("asset", "group", "owner", "SLA", "checks", "description"), asset_rows),
        "## Other packages",
        table(("package", "summary"), ((code(p), summaries.get(p, "")) for p in packages)),
    ]
    return "\n\n".join(parts) + "\n"
