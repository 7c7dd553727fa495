"""The architecture's layers (README, "Layout"): enforced by import-linter, and shipped apart.

platform_core <- collector | streaming <- platform_assets <- devtools <- bench: each layer
imports only the layers below it, collector and streaming are independent of each other,
the core and the services run without Dagster, and the image carries no dev tooling.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGES = PYPROJECT["tool"]["importlinter"]["root_packages"]
SHIPPED = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)},
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy_of_the_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(REPO / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("*.pyc"))
    return root


# Back-edges that existed before the layering (issue 10), and one of each forbidden kind.
BACK_EDGES = [
    ("collector/config.py", "from platform_assets.definitions import defs"),
    ("streaming/cdc/capture.py", "from devtools.sourcedb.server import LocalPostgres"),
    ("streaming/raw/writer.py", "from collector.ingest import Ingest"),
    ("collector/spool.py", "from streaming.raw.writer import ParquetRawWriter"),
    ("platform_core/settings.py", "from collector.config import CollectorConfig"),
    ("platform_assets/quality/cli.py", "from devtools.slack_webhook import serve_forever"),
    ("streaming/beam/options.py", "import dagster"),
]


@pytest.mark.parametrize(("module", "statement"), BACK_EDGES)
def test_a_back_edge_breaks_a_contract(copy_of_the_code: Path, module: str, statement: str):
    path = copy_of_the_code / module
    original = path.read_text()
    # hidden inside a function, where the old code hid them: the contract still sees it
    path.write_text(original + f"\n\ndef _hidden() -> None:\n    {statement}  # noqa\n")
    try:
        result = lint_imports(copy_of_the_code)
    finally:
        path.write_text(original)
    assert result.returncode != 0, f"{module}: {statement!r} passed the contracts"
    assert "BROKEN" in result.stdout


def test_the_image_ships_the_runtime_layers_only() -> None:
    dockerfile = (REPO / "infra" / "docker" / "platform.Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (?!--)(\S+) \./\S*$", dockerfile, re.MULTILINE))
    assert {p for p in copied if (REPO / p).is_dir() and (REPO / p / "__init__.py").exists()} == (
        set(SHIPPED)
    )
    assert "devtools" not in SHIPPED and "bench" not in SHIPPED
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"devtools", "tests", "bench"} <= set(ignored)


def test_runtime_packages_import_without_the_dev_tooling() -> None:
    """What the image runs imports with devtools, tests and bench absent from the path."""
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('devtools', 'bench', 'tests'):\n"
        "            raise ImportError(f'{name} is dev tooling')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import collector.app, streaming.beam.pipeline, streaming.cdc.bridge\n"
        "import streaming.cdc.capture, platform_assets.definitions\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
