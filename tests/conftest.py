"""Shared fixtures: real local engines only (DuckDB, dbt, Dagster, Parquet lake)."""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

VENV_BIN = str(Path(sys.executable).parent)
# dagster-dbt looks the dbt executable up on PATH
if VENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = VENV_BIN + os.pathsep + os.environ.get("PATH", "")

# `make test` runs the tests in TEST_WORKERS processes (pytest-xdist, `--dist loadfile`: a
# module's tests in one process, so its module and session fixtures are built once).


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules marked `long` first, and every test its own node id.

    Long modules first: `make test` has xdist hand whole modules to the test processes in
    collection order (`--no-loadscope-reorder`; by default it sends the modules with the most
    tests first, and the longest ones, a live platform each, have few and came last, so one
    process ran the last of them alone). Started first, they run while the short modules fill
    the other process (the order within a module is kept).

    Node ids: xdist hands tests out by node id, and of several with one id it runs one.
    schemathesis names one item per API operation (tests/collector/test_collector_fuzz.py)
    but leaves them all the test's node id under pytest 9 (it renames `_nodeid`, which
    pytest 9 no longer reads): each gets the id pytest gives a named item."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)  # stable
    ids = Counter(item.nodeid for item in items)
    for item in items:
        if ids[item.nodeid] > 1 and item.parent is not None:
            item._id = item.parent.id.child(item.name)
    if len({item.nodeid for item in items}) != len(items):
        raise pytest.UsageError("several tests share a node id: xdist would run one of them")


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings are cached per process; a test that changes the environment gets its own."""
    yield
    from platform_core.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """The dbt manifest that @dbt_assets reads at import (prepared once per session)."""
    from platform_assets.dbt.project import dbt_project

    if not dbt_project.manifest_path.exists():
        dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


@dataclass
class Platform:
    """A small shop landed in a private lake, with the warehouse it is built into."""

    data_dir: Path
    lake: Path
    warehouse: Path
    shop: object
    config: object
    first_day: date
    last_day: date


SMALL_SHOP = dict(
    days=8,
    sessions_per_day=160,
    products=60,
    initial_users=250,
    end_date=date(2026, 11, 20),
    seed=7,
)


@pytest.fixture(scope="session")
def small_platform(
    tmp_path_factory: pytest.TempPathFactory, dbt_manifest: Path
) -> Iterator[Platform]:
    """Land a small synthetic shop in raw and point settings and dbt at a private warehouse."""
    from devtools.shop.load import load_shop
    from devtools.shop.simulator import ShopConfig
    from platform_core.settings import get_settings
    from streaming.raw.writer import ParquetRawWriter

    data_dir = tmp_path_factory.mktemp("platform")
    saved = {k: os.environ.get(k) for k in ("DATA_DIR", "LAKE_DIR", "DUCKDB_PATH")}
    os.environ.update(
        DATA_DIR=str(data_dir),
        LAKE_DIR=str(data_dir / "lake"),
        DUCKDB_PATH=str(data_dir / "warehouse.duckdb"),
    )
    get_settings.cache_clear()
    config = ShopConfig(**SMALL_SHOP)
    shop, _ = load_shop(ParquetRawWriter(data_dir / "lake"), config)
    yield Platform(
        data_dir,
        data_dir / "lake",
        data_dir / "warehouse.duckdb",
        shop,
        config,
        config.first_day,
        config.last_day,
    )
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The official Pub/Sub emulator on a free loopback port; yields its host:port.

    PUBSUB_EMULATOR_HOST is set for the session so google-cloud-pubsub clients use it.
    Tests create their own uniquely named topics and subscriptions.
    """
    from devtools.services import start_pubsub_emulator

    service = start_pubsub_emulator(tmp_path_factory.mktemp("pubsub"))
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = service.address
    try:
        yield service.address
    finally:
        service.stop()
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
