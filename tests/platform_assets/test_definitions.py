"""The code location as a whole: it validates, and a snapshot of what it defines per
deployment (asset keys, groups, lineage, checks, jobs, schedules, sensors, resources) guards
every move. After an intended change, run
`UPDATE_SNAPSHOTS=1 uv run pytest tests/platform_assets/test_definitions.py` and review the
diff of tests/platform_assets/snapshots/.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from platform_assets.resources import PlatformResource
from platform_core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).parent / "snapshots"

DUMP = """
import json
from platform_assets.definitions import defs
repo = defs.get_repository_def()
graph = defs.resolve_asset_graph()
keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
print(json.dumps({
    "assets": {
        k.to_user_string(): {
            "group": graph.get(k).group_name,
            "deps": sorted(p.to_user_string() for p in graph.get(k).parent_keys),
            "kinds": sorted(graph.get(k).kinds),
        }
        for k in keys
    },
    "checks": sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys),
    "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
    "schedules": sorted(s.name for s in repo.schedule_defs),
    "sensors": sorted(s.name for s in repo.sensor_defs),
    "resources": sorted(defs.resources),
}, indent=1, sort_keys=True))
"""


def load_definitions(platform_env: str) -> dict:
    """The definitions as a fresh process loads them for this deployment (no cloud access:
    loading connects to nothing)."""
    env = {k: v for k, v in os.environ.items() if k != "DBT_TARGET"}
    env["PLATFORM_ENV"] = platform_env
    result = subprocess.run(
        [sys.executable, "-c", DUMP], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("platform_env", ["local", "gcp"])
def test_the_definitions_match_their_snapshot(platform_env: str, dbt_manifest: Path) -> None:
    snapshot = SNAPSHOTS / f"definitions_{platform_env}.json"
    loaded = load_definitions(platform_env)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(json.dumps(loaded, indent=1, sort_keys=True) + "\n")
    assert loaded == json.loads(snapshot.read_text())


def test_compaction_is_local_only(dbt_manifest: Path) -> None:
    local = json.loads((SNAPSHOTS / "definitions_local.json").read_text())
    gcp = json.loads((SNAPSHOTS / "definitions_gcp.json").read_text())
    assert "compact_raw_lake" in local["jobs"] and "compact_raw_lake" not in gcp["jobs"]
    assert gcp["assets"]["raw/events"]["kinds"] == ["bigquery"]
    assert local["assets"]["raw/events"]["kinds"] == ["parquet"]


def test_dagster_validates_the_code_location(dbt_manifest: Path) -> None:
    dagster = str(Path(sys.executable).parent / "dagster")
    result = subprocess.run(
        [dagster, "definitions", "validate", "-m", "platform_assets.definitions"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_the_platform_resource_carries_the_settings_a_run_uses() -> None:
    settings = Settings.from_env(
        {
            "PLATFORM_ENV": "gcp",
            "GCP_PROJECT": "acme-shop",
            "DATA_DIR": "/srv/platform",
            "COLLECTOR_SPOOL_MAX_MB": "0.5",
            "LLM_TIMEOUT_SECONDS": "2.5",
            "COLLECTOR_CORS_ORIGINS": "https://a.example,https://b.example",
            "PARTITION_START_DATE": "2024-06-01",
            "SLACK_BOT_TOKEN": "xoxb-never-in-config",
        }
    )
    resource = PlatformResource.from_settings(settings)
    # the values themselves, as the environment spells them (what the UI shows)
    assert resource.variables["GCP_PROJECT"] == "acme-shop"
    assert resource.variables["PLATFORM_ENV"] == "gcp"
    assert resource.variables["COLLECTOR_SPOOL_MAX_MB"] == "0.5"
    assert resource.variables["LLM_TIMEOUT_SECONDS"] == "2.5"
    assert "SLACK_BOT_TOKEN" not in resource.variables
    assert "xoxb" not in json.dumps(resource.variables)
    # and they read back as the same typed settings
    round_trip = resource.settings()
    for field in dataclasses.fields(Settings):
        if field.repr:  # secrets come from the run's environment, not from config
            assert getattr(round_trip, field.name) == getattr(settings, field.name), field.name
