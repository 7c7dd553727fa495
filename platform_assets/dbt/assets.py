"""dbt models as Dagster assets: one project, split into day-partitioned and whole-table runs.

No `from __future__ import annotations` here: Dagster inspects the context annotation at runtime.
"""

import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from packaging import version

from platform_assets.dbt.project import dbt_project
from platform_assets.dbt.read_snapshot import PublishError, PublishReport, publish_read_snapshot
from platform_assets.partitions import daily_partitions
from platform_assets.raw.assets import raw_asset_key
from platform_assets.warehouse_runs import WAREHOUSE_POOL
from platform_assets.warm import client as warm_client
from platform_core.durable import replace_atomically
from platform_core.settings import Settings, read_path_of

PARTITIONED_TAG = "partitioned"
LAYER_GROUPS = {"staging": "staging", "intermediate": "staging", "marts": "mart"}

# The shop's SLA: a mart more than 30 minutes behind is critical.
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=15)
)


class PlatformTranslator(DagsterDbtTranslator):
    """raw sources map onto the raw AssetSpecs; models group by layer, with the owners of
    dbt_project.yml and the description of their yml; marts carry the freshness SLA. No
    automation conditions: the raw sensor requests refreshes (see README)."""

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        if dbt_resource_props["resource_type"] == "source":
            return None  # the raw AssetSpecs own the raw tables
        # dbt_project.yml names them per layer (`+meta: {dagster: {owners: [...]}}`)
        return super().get_owners(dbt_resource_props)

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.group_name == "mart":
            return spec.replace_attributes(freshness_policy=MART_FRESHNESS)
        return spec

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return raw_asset_key(dbt_resource_props["name"])
        return dg.AssetKey([self._layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        return LAYER_GROUPS.get(self._folder(dbt_resource_props), "staging")

    @staticmethod
    def _folder(props: Mapping[str, Any]) -> str:
        fqn = props.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else "staging"

    def _layer(self, props: Mapping[str, Any]) -> str:
        return "mart" if self._folder(props) == "marts" else "staging"


translator = PlatformTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def partition_vars(context: AssetExecutionContext) -> dict[str, str]:
    """The event dates a partitioned run recomputes (inclusive)."""
    window = context.partition_time_window
    return {
        "min_date": window.start.date().isoformat(),
        "max_date": (window.end - timedelta(days=1)).date().isoformat(),
    }


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=f"tag:{PARTITIONED_TAG}",
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=translator,
    name="dbt_event_models",
    pool=WAREHOUSE_POOL,
)
def dbt_event_models(context: AssetExecutionContext, dbt: DbtCliResource):
    """Day-partitioned models: a run (or a single-run backfill) recomputes whole event days.
    A run of their checks alone (the raw sensor's verification run) has no day: its dbt tests
    read the whole table."""
    partitioned = context.has_partition_key or context.has_partition_key_range
    args = ["build", *(["--vars", json.dumps(partition_vars(context))] if partitioned else [])]
    yield from run_dbt(dbt, args, context)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=f"tag:{PARTITIONED_TAG}",
    dagster_dbt_translator=translator,
    name="dbt_models",
    pool=WAREHOUSE_POOL,
)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
    """Current-state staging and the marts, rebuilt as whole tables."""
    yield from run_dbt(dbt, ["build"], context)


# dagster-dbt gives every invocation its own target directory (manifest, run results, compiled
# SQL: 2-3 MB) and never removes it; a sensor-driven refresh every few seconds would fill the
# disk. Dagster's event log keeps the results; the newest directories stay for debugging.
INVOCATIONS_KEPT = 20
INVOCATION_DIR = re.compile(r"^[A-Za-z0-9_]+-[0-9a-f]{7}-[0-9a-f]{7}$")
PARTIAL_PARSE = "partial_parse.msgpack"
# the dbt steps' partial parses kept, one per op, with vars or not, and profile (the newest)
PARTIAL_PARSES_KEPT = 8


def target_root() -> Path:
    target = Path(os.environ.get("DBT_TARGET_PATH", "target"))
    return target if target.is_absolute() else dbt_project.project_dir / target


def run_dbt(
    dbt: DbtCliResource, args: Sequence[str], context: AssetExecutionContext
) -> Iterator[Any]:
    """`dbt <args>` for an asset step, parsing incrementally and cleaning up after itself.

    dbt reparses the whole project when its vars or profile differ from those of the
    `partial_parse.msgpack` it starts from, and the one dagster-dbt copies from `target/`
    comes from whatever ran last: the partitioned and the whole-table steps (different vars)
    kept invalidating each other, ~2 s of parsing each on every refresh. Each op now starts
    from the msgpack its own previous invocation left, with vars or without (a verification
    run tests the partitioned models without a day, and must not cost the next refresh a
    full parse)."""
    op_name = context.op_execution_context.op.name
    root = target_root()
    run_dir = root / f"{op_name}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    cache = partial_parse_cache(root, op_name, with_vars="--vars" in args)
    if cache.is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, run_dir / PARTIAL_PARSE)
    # dbt's events are held until the read snapshot is published: a materialization is
    # recorded only once readers can see it (the reconciliation relies on that)
    events: list[Any] = []
    failure: Exception | None = None
    # no manifest.json / run_results.json per invocation (~1 s of a refresh's dbt step here):
    # Dagster reads dbt's events as they stream, and the manifest it needs is the prepared one
    try:
        invocation = dbt.cli([*args, "--no-write-json"], context=context, target_path=run_dir)
        for event in invocation.stream():
            events.append(event)
    except Exception as error:  # dbt failed: what it built is still recorded and published
        failure = error
    finally:
        save_partial_parse(run_dir / PARTIAL_PARSE, cache)
        prune_invocations(root, keep=INVOCATIONS_KEPT)
    published, publish_error = publish_for_readers(dbt, context, built=failure is None)
    for event in events:
        yield with_publish_metadata(event, published)
    if failure is not None:
        raise failure
    if publish_error is not None:
        raise dg.Failure(description=publish_error)


def publish_for_readers(
    dbt: DbtCliResource, context: AssetExecutionContext, *, built: bool
) -> tuple[PublishReport | None, str | None]:
    """Publish the read snapshot after a dbt invocation (local warehouse only; also after a
    failed one: what dbt did build is in the file, and its materializations are recorded)."""
    if not getattr(dbt, "publish_read_snapshot", False):
        return None, None
    # the file dbt wrote: its profile reads DUCKDB_PATH, which project.py sets from the
    # settings unless the environment already did
    source = Path(os.environ["DUCKDB_PATH"])
    if not built and not source.exists():
        return None, None
    try:
        report = publish_read_snapshot(source, read_path_of(source))
    except PublishError as error:
        context.log.error(f"read snapshot not published: {error}")
        return None, f"the read snapshot was not published: {error}"
    context.log.info(report.describe())
    return report, None


def with_publish_metadata(event: Any, report: PublishReport | None) -> Any:
    """The publish time on each materialization (the UI plots it per asset)."""
    if report is None or not isinstance(event, dg.Output | dg.AssetMaterialization):
        return event
    return event.with_metadata(
        {**event.metadata, "read_snapshot_publish_ms": round(report.seconds * 1000, 1)}
    )


@functools.cache
def profile_env() -> tuple[str, ...]:
    """The environment variables dbt's profile (profiles.yml) reads."""
    profiles = Path(dbt_project.project_dir) / "profiles.yml"
    return tuple(sorted(set(re.findall(r"env_var\(\s*['\"](\w+)['\"]", profiles.read_text()))))


def partial_parse_cache(root: Path, op_name: str, *, with_vars: bool) -> Path:
    """Where an op's steps keep the partial parse they start from: per op, with vars or
    without, and per profile. A partial parse made under another profile's values is one dbt
    throws away ("config profile ... changed"): a `make dev` and the tests, or two test
    processes, on one checkout point dbt at other warehouses."""
    profile = "\0".join(f"{key}={os.environ.get(key, '')}" for key in profile_env())
    digest = hashlib.sha256(profile.encode()).hexdigest()[:12]
    return root / "partial_parse" / f"{op_name}{'-vars' if with_vars else ''}-{digest}.msgpack"


def save_partial_parse(source: Path, cache: Path) -> None:
    if not source.is_file():
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    # concurrent runs of one op: last writer wins, never a torn file
    replace_atomically(cache, lambda handle: handle.write(source.read_bytes()))
    others = sorted(cache.parent.glob("*.msgpack"), key=_mtime, reverse=True)
    for stale in others[PARTIAL_PARSES_KEPT:]:
        stale.unlink(missing_ok=True)


def prune_invocations(root: Path, keep: int) -> list[Path]:
    """Remove all but the `keep` newest per-invocation target directories; returns removed."""
    try:
        entries = [p for p in root.iterdir() if p.is_dir() and INVOCATION_DIR.match(p.name)]
    except FileNotFoundError:
        return []
    by_age = sorted(entries, key=_mtime, reverse=True)
    removed = by_age[keep:]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


class PlatformDbtCliResource(DbtCliResource):
    """dagster-dbt runs `dbt --version` in every run to tell dbt-core from dbt Fusion; that
    imports every adapter and asks PyPI for releases (10-20 s per run here, and in every run
    pod). The installed dbt-core gives the same answer at once. `_cli_version` is private in
    dagster-dbt 0.29: check it on upgrades (tests/platform_assets/test_pipeline.py does),
    as `_initialize_dbt_core_adapter` below.

    Locally, after each invocation, it publishes the warehouse file for readers
    (`read_snapshot.py`); not on BigQuery, whose readers never block a writer."""

    publish_read_snapshot: bool = False

    @property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        """dagster-dbt also builds a dbt adapter in the run's own process before every
        invocation (loading the profile and the project, registering the adapter: 1-2 s per
        dbt step here), used only by `fetch_row_counts` and `fetch_column_metadata`, which
        these assets do not call. None: the invocation runs without that handle, as
        dagster-dbt does when building it fails. Private too: checked with `_cli_version`."""
        return None


def dbt_resource(settings: Settings) -> DbtCliResource:
    socket = settings.warm_socket
    warm = {"dbt_executable": str(warm_dbt_executable(socket))} if socket else {}
    return PlatformDbtCliResource(
        project_dir=dbt_project,
        target=settings.resolved_dbt_target,
        publish_read_snapshot=settings.is_local and settings.resolved_dbt_target == "local",
        **warm,
    )


def warm_dbt_executable(socket: Path) -> Path:
    """The executable dagster-dbt runs to reach the warm server on `socket`
    (platform_assets/warm): a two-line script next to the socket that starts the client
    without site-packages, which runs the real dbt when no server answers."""
    python = Path(sys.executable)
    script = (
        "#!/bin/sh\n"
        f'exec "{python}" -S "{Path(warm_client.__file__).resolve()}" '
        f'"{socket}" "{python.parent / "dbt"}" "$@"\n'
    )
    path = socket.parent / f"{socket.name}.dbt"
    if not path.is_file() or path.read_text() != script:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda handle: write_executable(handle, script))
    return path


def write_executable(handle: BinaryIO, text: str) -> None:
    os.fchmod(handle.fileno(), 0o755)  # before the rename: never seen without its mode
    handle.write(text.encode())
