"""The live platform (`make dev`) as people use it: the Dagster UI in a real browser (the
lineage raw -> staging -> mart, a mart materialized from the UI with its checks, a failed
check's narrative), and events sent with the official Segment SDK to the collector it printed,
counted in the marts through the read path within the freshness target.

Expected values come from the code location's definitions (what the UI must show) and from
what the test itself sent, never from the UI. One module: its tests share one platform, and
`make test`'s processes take a module each (pytest-xdist, `--dist loadfile`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from segment.analytics.client import Client

from platform_assets.quality.config import CONSISTENCY
from platform_core.contract import isoformat_z

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(1800)]

DOC_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "lineage.png"
MART = dg.AssetKey(["mart", "mart_daily_sales"])
STG_EVENTS = dg.AssetKey(["staging", "stg_events"])
ORPHAN_CHECK = "consistency_products_viewed_exist"
ORPHAN_PRODUCT = "987654321"  # no product has this id
ORPHAN_VISITORS, ORPHAN_VIEWS_EACH = 10, 20
SDK_VIEWS = 5  # views the Segment SDK test sends
RUN_DONE = re.compile(r"\b(Success|Failure|Canceled)\b")

# the graph as drawn: asset nodes (SVG foreignObjects: name, box) and edges (paths with an
# arrow: start at the right edge of the parent, end at the left edge of the child)
DRAWN_GRAPH = """() => ({
  nodes: [...document.querySelectorAll('svg foreignObject')].map(f => ({
    x: +f.getAttribute('x'), y: +f.getAttribute('y'),
    w: +f.getAttribute('width'), h: +f.getAttribute('height'),
    text: f.textContent || ''})),
  edges: [...document.querySelectorAll('svg path[marker-end]')].map(p => p.getAttribute('d')),
})"""


@pytest.fixture(scope="module")
def graph(dbt_manifest: Path):
    """The asset graph the code location defines (the UI must draw this)."""
    from platform_assets.definitions import build_definitions
    from platform_core.settings import Settings

    return build_definitions(Settings.from_env({})).resolve_asset_graph()


def drawn_edges(page, graph) -> tuple[set[str], set[tuple[str, str]]]:
    """The asset keys drawn and the edges between them, read from the SVG's geometry."""
    drawn = page.evaluate(DRAWN_GRAPH)
    by_name = {key.path[-1]: key.to_user_string() for key in graph.get_all_asset_keys()}
    nodes = []
    for node in drawn["nodes"]:
        name = re.match(r"[a-z_]+", node["text"])
        if name and name.group(0) in by_name and node["h"] < 400:  # not a group box
            nodes.append({**node, "key": by_name[name.group(0)]})

    def at(x: float, y: float, side: str) -> str | None:
        for node in nodes:
            edge_x = node["x"] + node["w"] if side == "right" else node["x"]
            if abs(edge_x - x) <= 12 and node["y"] <= y <= node["y"] + node["h"]:
                return node["key"]
        return None

    edges = set()
    for d in drawn["edges"]:
        points = [tuple(map(float, p)) for p in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]
        parent, child = at(*points[0], "right"), at(*points[-1], "left")
        assert parent and child, (d, nodes)
        edges.add((parent, child))
    return {n["key"] for n in nodes}, edges


def test_the_asset_graph_shows_raw_staging_and_mart_with_their_edges(
    page, live_platform, graph, tmp_path
):
    url = f"{live_platform.ui}/assets/mart/mart_daily_sales?view=lineage&lineageScope=upstream"
    page.goto(url + "&lineageDepth=3", wait_until="networkidle")
    page.locator("svg foreignObject", has_text="mart_daily_sales").first.wait_for()
    page.wait_for_function("() => !document.body.innerText.includes('Loading...')")
    keys, edges = drawn_edges(page, graph)
    page.screenshot(path=tmp_path / "lineage.png")
    if os.environ.get("UPDATE_DOC_IMAGES"):
        DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "lineage.png", DOC_IMAGE)

    assert {key.split("/")[0] for key in keys} == {"raw", "staging", "mart"}
    expected = {
        (parent.to_user_string(), key.to_user_string())
        for key in map(dg.AssetKey.from_user_string, keys)
        for parent in graph.get(key).parent_keys
        if parent.to_user_string() in keys
    }
    assert edges == expected
    layer = {"raw": 0, "staging": 1, "mart": 2}
    assert all(layer[p.split("/")[0]] <= layer[c.split("/")[0]] for p, c in edges)
    body = page.inner_text("body")
    for text in ("raw", "staging", "mart", "Parquet", "DuckDB", "dbt"):  # groups and kinds
        assert text in body, text

    # the whole platform, groups collapsed: raw -> staging -> mart
    page.goto(f"{live_platform.ui}/asset-groups", wait_until="networkidle")
    page.locator("svg foreignObject", has_text="staging").first.wait_for()
    page.screenshot(path=tmp_path / "global-lineage.png")
    assert page.locator("svg path[marker-end]").count() >= 2


def test_a_mart_page_shows_owner_description_and_freshness(page, live_platform, graph, tmp_path):
    node = graph.get(MART)
    evaluated = re.compile(r"Freshness policy\s+(Passing|Warning|Failing)")
    deadline = time.monotonic() + 300  # the daemon evaluates freshness on its own clock
    while True:
        page.goto(f"{live_platform.ui}/assets/mart/mart_daily_sales", wait_until="networkidle")
        page.get_by_text("Freshness policy").first.wait_for()
        body = page.inner_text("body")
        if evaluated.search(body) or time.monotonic() > deadline:
            break
        time.sleep(10)
    page.screenshot(path=tmp_path / "mart.png")
    assert node.owners == ["team:analytics-engineering"] and "analytics-engineering" in body
    assert node.description.split(".")[0] in body.replace("\n", " ")
    assert evaluated.search(body), body[:2000]


def test_materialize_a_mart_from_the_ui_and_see_its_checks(page, live_platform, graph, tmp_path):
    checks = {key.name for key in graph.asset_check_keys if key.asset_key == MART}
    page.goto(f"{live_platform.ui}/assets/mart/mart_daily_sales", wait_until="networkidle")
    page.locator("button", has_text=re.compile(r"^Materialize$")).first.click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    toast.wait_for()
    run_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)
    page.get_by_text("View", exact=True).last.click()  # the toast's link to the run
    page.wait_for_url(re.compile(rf"/runs/{run_id}"), wait_until="commit")  # client-side
    status = page.locator("body").get_by_text(RUN_DONE).first
    status.wait_for(timeout=900_000)  # queued behind a refresh, then dbt on a busy machine
    page.screenshot(path=tmp_path / "run.png")
    assert status.inner_text().strip() == "Success", page.inner_text("body")[:3000]
    body = page.inner_text("body")
    assert f"{len(checks)} checks" in body
    page.get_by_text("ASSET_CHECK_EVALUATION").first.wait_for()

    # the asset's Checks tab: every check, with this run's result
    page.goto(f"{live_platform.ui}/assets/mart/mart_daily_sales?view=checks")
    # long names show as their start ... end (the whole name is in a hidden element)
    page.get_by_text(f"Checks ({len(checks)})").first.wait_for()
    page.screenshot(path=tmp_path / "checks.png")
    listing = page.inner_text("body")
    for name in checks:
        assert name[:12] in listing and name[-12:] in listing, name
    assert "In Progress" not in listing  # nothing else runs: the platform sends no traffic


def send_late_orphan_views(collector: str, day: date) -> int:
    """Views of a product the shop does not have, made on `day` and delivered now: phones
    flushing their offline queues (Segment's `timestamp`, with the batch's `sentAt`, files
    each view under `day`). A few visitors, so that the sessions of the day barely move."""
    at = datetime.combine(day, dt_time(12), tzinfo=UTC)
    batch = [
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"ui-test-orphan-{uuid.uuid4().hex}",
            "anonymousId": f"ui-test-orphan-{visitor}",
            "timestamp": isoformat_z(at + timedelta(seconds=view)),
            "properties": {"product_id": ORPHAN_PRODUCT},
        }
        for visitor in range(ORPHAN_VISITORS)
        for view in range(ORPHAN_VIEWS_EACH)
    ]
    sent = httpx.post(
        f"{collector}/v1/batch",
        auth=("demo-web-key", ""),
        json={"batch": batch, "sentAt": isoformat_z(datetime.now(UTC))},
        timeout=30,
    )
    assert sent.status_code == 200 and sent.json()["accepted"] == len(batch), sent.text
    return len(batch)


def judged_day() -> date:
    """The day the daily rules judge now: the last complete UTC day (RuleContext.day)."""
    return datetime.now(UTC).date() - timedelta(days=1)


def test_a_failed_check_shows_its_narrative(page, live_platform, graph, tmp_path):
    """Views of a product that does not exist, delivered late (made yesterday, sent now): the
    raw sensor refreshes yesterday's partition of stg_events, the cross-source check of
    stg_events (the share of a day's product views whose product the database does not
    have, against the days before) fails on that complete day, and the agent explains it.

    The daily rules judge the last complete day, so views sent "now" would be judged only
    tomorrow; views made yesterday are what an offline mobile queue delivers every day."""
    rule = next(
        rule
        for asset, rule in CONSISTENCY
        if asset == STG_EVENTS.to_user_string() and rule.check_name == ORPHAN_CHECK
    )
    assert dg.AssetCheckKey(STG_EVENTS, ORPHAN_CHECK) in graph.asset_check_keys
    # the days before yesterday that the backfill filled: enough for the rule to judge it
    assert int(live_platform.env["DEV_BACKFILL_DAYS"]) - 1 >= rule.min_training_points
    url = f"{live_platform.ui}/assets/staging/stg_events?view=checks&checkDetail={ORPHAN_CHECK}"
    sent: dict[date, int] = {}
    failed = None
    deadline = time.monotonic() + 900
    while failed is None and time.monotonic() < deadline:
        day = judged_day()
        if day not in sent:  # the first time, or the UTC day turned: the rule judges another
            sent[day] = send_late_orphan_views(live_platform.collector, day)
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Execution history").click()
        page.get_by_text("Evaluation result").first.wait_for()  # the history's header
        on_days = "|".join(re.escape(f"{rule.child.label} on {d.isoformat()} ") for d in sent)
        rows = page.locator("tr", has_text="Failed").filter(has_text=re.compile(on_days))
        try:
            rows.first.wait_for(timeout=10_000)
            failed = rows.first
        except PlaywrightTimeout:
            time.sleep(15)
    assert failed is not None, "the check did not fail within 15 minutes"
    row = failed.inner_text()
    views = next(n for d, n in sent.items() if f" on {d.isoformat()} " in row)
    assert re.search(rf"(^|\s){views:,} of ", row), row  # the views sent, and no other orphan
    failed.locator("button").last.click()  # its metadata
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("narrative", exact=True).wait_for()
    dialog.get_by_text("Likely causes:").first.wait_for()
    page.screenshot(path=tmp_path / "narrative.png")

    def entry(label: str):
        """The value cell of one metadata entry."""
        name = page.locator("td", has_text=re.compile(rf"^{label}$"))
        return dialog.locator("tr").filter(has=name).locator("td").last

    # the narrative: plain text (a value in it cannot become a link), and who wrote it
    narrative = entry("narrative")
    assert narrative.evaluate("cell => cell.children.length") == 0  # text, no markup
    text = narrative.inner_text()
    assert "Likely causes:" in text and "Recommended actions:" in text
    assert "Narrative by deterministic narrator" in text  # who wrote it, said plainly
    assert entry("narrator").inner_text().startswith("deterministic narrator")
    # the rows behind it, as a table: the product viewed, and how many views
    cell = dialog.locator("td", has_text=re.compile(rf"^{ORPHAN_PRODUCT}$"))
    sample = cell.locator("xpath=ancestor::table[1]")
    assert sample.locator("th").all_inner_texts() == [rule.column, "rows"]
    assert cell.locator("xpath=..").locator("td").all_inner_texts() == [ORPHAN_PRODUCT, str(views)]


# --- the Segment SDK, the collector and the read path ------------------------------------


def product_views(read_path, product_id: int) -> int:
    with duckdb.connect(str(read_path), read_only=True) as con:
        return con.execute(
            "select views from mart.mart_product_performance where product_id = ?", [product_id]
        ).fetchone()[0]


def test_segment_sdk_events_are_counted_in_the_marts_within_the_freshness_target(
    live_platform, dbt_manifest
):
    from platform_assets.dbt.assets import MART_FRESHNESS  # reads the manifest at import

    read_path = live_platform.read_path
    with duckdb.connect(str(read_path), read_only=True) as con:
        product_id = con.execute("select min(product_id) from mart.mart_product_performance")
        product_id = product_id.fetchone()[0]
    before = product_views(read_path, product_id)

    client = Client("demo-web-key", host=live_platform.collector, sync_mode=True, max_retries=3)
    visitor = f"sdk-{uuid.uuid4().hex[:8]}"
    sent_at = time.monotonic()
    for position in range(SDK_VIEWS):
        ok, _ = client.track(
            anonymous_id=visitor,
            event="Product Viewed",
            properties={"product_id": str(product_id), "position": position},
        )
        assert ok

    target = MART_FRESHNESS.warn_window.to_timedelta()  # the shop's SLA: warn at 15 minutes
    assert target == timedelta(minutes=15)
    seen = before
    while time.monotonic() - sent_at < target.total_seconds():
        seen = product_views(read_path, product_id)  # a fresh connection: the last refresh
        if seen >= before + SDK_VIEWS:
            break
        time.sleep(5)
    latency = time.monotonic() - sent_at
    assert seen == before + SDK_VIEWS, f"{seen - before} of {SDK_VIEWS} views after {latency:.0f}s"
    print(f"Segment SDK -> collector -> Beam -> raw -> dbt -> read path: {latency:.0f}s")
