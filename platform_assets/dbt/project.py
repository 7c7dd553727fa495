"""The dbt project as Dagster sees it. Kept apart from the @dbt_assets module so that
`dagster-dbt project prepare-and-package --file platform_assets/dbt/project.py` can build the
manifest before anything that needs the manifest is imported."""

from __future__ import annotations

import os

from dagster_dbt import DbtProject

from platform_core.settings import DBT_PROJECT_DIR, get_settings


def export_dbt_env() -> None:
    """Point dbt's profile at this deployment's warehouse unless the caller already did."""
    for key, value in get_settings().dbt_env().items():
        os.environ.setdefault(key, value)


export_dbt_env()
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, target=get_settings().resolved_dbt_target)
dbt_project.prepare_if_dev()
