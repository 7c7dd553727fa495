"""The live platform (`python -m devtools.dev`, what `make dev` runs) and a real browser.

One platform per test module, on free ports and a private data directory, started the way a
person starts it, and stopped when the module ends (`make test` starts these modules first:
a platform or a Playwright event loop left running would slow or break the modules after
them in the same process); the tests read the endpoints it prints. It sends no traffic of its own
(DEV_EVENTS_PER_SECOND=0), so what a test sends is all that changes. Its first start
backfills BACKFILL_DAYS past days: the daily quality rules judge yesterday against the days
before it and judge nothing with fewer than MIN_TRAINING_POINTS of them. Headless Chromium is
Debian's (`apt-get install chromium`; .ci/run installs it), driven by Playwright from PyPI
(its own browser download is not reachable here). Screenshots go to each test's tmp_path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.dev.launch import RunningDev, isolated_env, start_dev, stop_dev
from platform_assets.quality.specs import MIN_TRAINING_POINTS

# yesterday (the day judged) and, before it, the training days the rules need, plus one
BACKFILL_DAYS = MIN_TRAINING_POINTS + 2

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def live_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDev]:
    # under /tmp with 0755: PostgreSQL runs as another user and must reach its data dir
    root = Path(tempfile.mkdtemp(prefix="make-dev-"))
    os.chmod(root, 0o755)
    data_dir = root / "data"
    output = tmp_path_factory.mktemp("make-dev") / "make-dev.log"
    env = isolated_env(data_dir, backfill_days=BACKFILL_DAYS)
    platform = start_dev(data_dir, env, output)
    try:
        yield platform
    finally:
        stop_dev(platform)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_platform: RunningDev, tmp_path: Path) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1800, "height": 1100})
    # the UI's "join the community" dialog, answered once per browser profile
    context.add_init_script("localStorage.setItem('communityNux', JSON.stringify('1'))")
    context.set_default_timeout(60_000)
    page = context.new_page()
    yield page
    page.screenshot(path=tmp_path / "last.png")  # where the test ended, passed or not
    context.close()
