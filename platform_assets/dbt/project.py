"""The dbt project as Dagster sees it. Kept apart from the @dbt_assets module so that
`dagster-dbt project prepare-and-package --file platform_assets/dbt/project.py` can build the
manifest before anything that needs the manifest is imported.

Under `dagster dev` (`make dev`, `make ui`) dagster-dbt re-parses the project in every
process that imports this module: the code server, and each run's worker. A parse costs a
`dbt --version` and a `dbt parse` (20-30 s per run on this machine), so this module
parses only when the project changed since the manifest was written.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster_dbt import DbtProject

from platform_core.settings import DBT_PROJECT_DIR, get_settings

# what a parse reads (the profile and the project file, models, macros, tests, ...)
PROJECT_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests", "analyses")


def export_dbt_env() -> None:
    """Point dbt's profile at this deployment's warehouse unless the caller already did."""
    for key, value in get_settings().dbt_env().items():
        os.environ.setdefault(key, value)


def manifest_is_stale(project_dir: Path, manifest: Path) -> bool:
    """Is there no manifest, or a project file newer than it?"""
    try:
        written = manifest.stat().st_mtime
    except FileNotFoundError:
        return True
    for name in PROJECT_SOURCES:
        path = project_dir / name
        if not path.exists():
            continue
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        if any(f.stat().st_mtime > written for f in files):
            return True
    return False


def prepare_if_changed(project: DbtProject) -> None:
    """`project.prepare_if_dev()`, when the project changed since its manifest was written."""
    if project.preparer.using_dagster_dev() and manifest_is_stale(
        Path(project.project_dir), Path(project.manifest_path)
    ):
        project.prepare_if_dev()


export_dbt_env()
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, target=get_settings().resolved_dbt_target)
prepare_if_changed(dbt_project)
