"""The Dagster UI of the live platform, in a real browser: the lineage raw -> staging -> mart,
a mart materialized from the UI with its checks, a failed check's narrative.

Expected values come from the code location's definitions (what the UI must show) and from
what the test itself sent, never from the UI.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DOC_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "lineage.png"
MART = dg.AssetKey(["mart", "mart_daily_sales"])
ORPHAN_PRODUCT = "987654321"  # no product has this id
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


@pytest.mark.skip(
    reason="no check fails on today's data within a live session: the whole-table reference "
    "this test relied on became the cross-source check consistency_products_viewed_exist, "
    "which judges complete days against a learnt baseline (the orphans sent today are judged "
    "tomorrow). To be re-targeted; the narrative's rendering as plain text is covered by "
    "tests/platform_assets/test_quality_checks.py."
)
def test_a_failed_check_shows_its_narrative(page, live_platform, tmp_path):
    """Views of a product that does not exist: the raw sensor refreshes staging, the
    cross-source check of stg_events (products viewed that the database does not have)
    fails, and the agent explains it. A few hundred views, so that the share of the day's
    views with no product clears the check's learnt tolerance."""
    views = 200
    batch = [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": f"ui-test-orphan-{i}",
            "properties": {"product_id": ORPHAN_PRODUCT},
        }
        for i in range(views)
    ]
    sent = httpx.post(
        f"{live_platform.collector}/v1/batch",
        auth=("demo-web-key", ""),
        json={"batch": batch},
        timeout=30,
    )
    assert sent.status_code == 200, sent.text
    check = f"{live_platform.ui}/assets/staging/stg_events?view=checks"
    check += "&checkDetail=consistency_products_viewed_exist"
    deadline = time.monotonic() + 900
    failed = None
    while time.monotonic() < deadline:
        page.goto(check, wait_until="networkidle")
        page.get_by_text("Execution history").click()
        rows = page.locator("tr", has_text="Failed").filter(has_text="have no match")
        if rows.count():
            failed = rows.first
            break
        time.sleep(15)
    assert failed is not None, "the check did not fail within 15 minutes"
    assert f"{views} of" in failed.inner_text()  # the views sent
    failed.locator("button").last.click()  # its metadata
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("narrative", exact=True).wait_for()
    # the narrative is plain text (a value in it cannot become a link), the sample a table
    dialog.get_by_text("Likely causes:").first.wait_for()
    page.screenshot(path=tmp_path / "narrative.png")
    text = page.inner_text("body")
    assert "Likely causes:" in text and "Recommended actions:" in text
    assert "deterministic narrator" in text  # who wrote it, said plainly
    dialog.get_by_text("sample", exact=True).wait_for()  # the rows behind it, as a table
