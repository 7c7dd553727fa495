"""The whole docs/ tree: build it, write it, and tell which files are stale."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from platform_assets.genai.docgen.asset_pages import asset_page, asset_path
from platform_assets.genai.docgen.code_index import index_packages
from platform_assets.genai.docgen.markdown import HEADER
from platform_assets.genai.docgen.pipeline_pages import (
    code_pipeline_page,
    dagster_page,
    dbt_page,
    index_page,
    pipeline_packages,
    pipeline_path,
    raw_writers,
)
from platform_assets.genai.docgen.platform_graph import (
    code_location_module,
    collect,
    load_definitions,
)
from platform_assets.genai.docgen.prose import existing_prose, insert_prose, strip_prose
from platform_assets.genai.sql_optimizer.dbt_render import render_bigquery
from platform_assets.genai.sql_optimizer.schema import build_schema
from platform_core.settings import DBT_PROJECT_DIR, Settings

# the product's top-level code folders (fixed by the product owner); packages inside move freely
CODE_FOLDERS = ("collector", "streaming", "platform_assets")


@dataclass(frozen=True)
class Stale:
    path: str
    why: str  # differs | missing | no longer generated


def build_site(root: Path) -> dict[str, str]:
    """Every page, by path relative to docs/."""

    module = code_location_module(root)
    defs = load_definitions(module)
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    defaults = Settings()  # project and dataset names as documented, not this machine's
    with tempfile.TemporaryDirectory() as target:
        rendered = json.loads(render_bigquery(defaults, Path(target)).read_text())
    bigquery = build_schema(
        rendered, project=defaults.gcp_project, raw_dataset=defaults.bq_raw_dataset
    )
    platform = collect(defs, manifest, bigquery)
    modules = index_packages(root, CODE_FOLDERS)
    pipelines = pipeline_packages(modules)
    pages = {
        asset_path(key): asset_page(
            asset, platform, module, raw_writers(key, pipelines, asset_path(key))
        )
        for key, asset in platform.assets.items()
    }
    for name, members in pipelines.items():
        pages[pipeline_path(name)] = code_pipeline_page(name, members, platform.assets)
    pages[pipeline_path("dbt")] = dbt_page(platform)
    pages[pipeline_path("dagster")] = dagster_page(platform, module)
    pages["index.md"] = index_page(platform, pipelines, modules)
    return dict(sorted(pages.items()))


def generated_files(out: Path) -> list[str]:
    """Files under `out` this generator wrote (they carry its header)."""
    return sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*.md") if p.read_text().startswith(HEADER)
    )


def stale_files(out: Path, pages: dict[str, str]) -> list[Stale]:
    stale = []
    for path, content in pages.items():
        file = out / path
        if not file.exists():
            stale.append(Stale(path, "missing"))
        elif strip_prose(file.read_text()) != strip_prose(content):
            stale.append(Stale(path, "differs"))
    stale += [Stale(p, "no longer generated") for p in generated_files(out) if p not in pages]
    return stale


def write_site(out: Path, pages: dict[str, str]) -> list[str]:
    """Write what changed (keeping LLM overviews already there); remove pages no longer made."""
    written = []
    for path, content in pages.items():
        file = out / path
        old = file.read_text() if file.exists() else ""
        block = existing_prose(old)
        if block and not existing_prose(content):
            content = insert_prose(content, block)
        if old != content:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(content)
            written.append(path)
    for path in generated_files(out):
        if path not in pages:
            (out / path).unlink()
            written.append(path)
    return written
