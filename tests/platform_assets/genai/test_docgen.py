"""docs/ is generated from the code, dbt and Dagster, and cannot go stale unnoticed.

`test_committed_docs_are_current` is `make docs-check` inside `make test`: the generator
runs in a fresh process (default settings), and the committed docs/ must match what it made;
the failure names every stale file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devtools.llm_fakes import ScriptedToolChatModel
from platform_assets.genai.docgen.cli import check
from platform_assets.genai.docgen.markdown import HEADER
from platform_assets.genai.docgen.prose import BEGIN, write_prose
from platform_assets.genai.docgen.site import stale_files, write_site
from platform_assets.genai.llm import ModelChoice

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pages(dbt_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The pages as `make docs` makes them: the generator in a fresh process, with the
    platform's settings unset (as the CLI pins them), writing into an empty directory."""
    from platform_core.settings import documented_settings

    out = tmp_path_factory.mktemp("docs")
    settings = {env for env, _, _ in documented_settings()}
    env = {k: v for k, v in os.environ.items() if k not in settings}
    subprocess.run(
        [sys.executable, "-m", "platform_assets.genai.docgen", "--out", str(out)],
        check=True,
        capture_output=True,
        env=env,
        cwd=ROOT,
    )
    return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.md"))}


def test_committed_docs_are_current(pages: dict[str, str]) -> None:
    """`make docs-check` within `make test`: a stale, missing or retired page is named."""
    code, lines = check(ROOT / "docs", pages)
    assert code == 0, "docs/ is stale, run `make docs`:\n" + "\n".join(lines)


def test_the_check_names_every_stale_file(pages: dict[str, str], tmp_path: Path) -> None:
    write_site(tmp_path, pages)
    assert check(tmp_path, pages)[0] == 0
    edited = tmp_path / "assets" / "mart" / "fct_orders.md"
    edited.write_text(edited.read_text().replace("team:analytics-engineering", "nobody"))
    (tmp_path / "pipelines" / "dbt.md").unlink()
    (tmp_path / "assets" / "mart" / "retired_model.md").write_text(HEADER + "\n\n# old\n")
    (tmp_path / "notes.md").write_text("# written by hand: not the generator's\n")
    code, lines = check(tmp_path, pages)
    assert code == 1
    assert {(s.path, s.why) for s in stale_files(tmp_path, pages)} == {
        ("assets/mart/fct_orders.md", "differs"),
        ("pipelines/dbt.md", "missing"),
        ("assets/mart/retired_model.md", "no longer generated"),
    }
    assert any("assets/mart/fct_orders.md (differs)" in line for line in lines)
    write_site(tmp_path, pages)
    assert check(tmp_path, pages)[0] == 0
    assert not (tmp_path / "assets" / "mart" / "retired_model.md").exists()
    assert (tmp_path / "notes.md").exists()


def test_pages_are_portable_and_free_of_run_details(pages: dict[str, str]) -> None:
    timestamp = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
    for path, text in pages.items():
        assert text.startswith(HEADER), path
        for machine_specific in (str(ROOT), "/tmp/", "/root", "/home/", "/work/"):
            assert machine_specific not in text, (path, machine_specific)
        assert not timestamp.search(text), path


def test_every_asset_and_pipeline_has_a_page(pages: dict[str, str]) -> None:
    from platform_assets.definitions import defs

    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {f"assets/{key}.md" for key in keys} <= set(pages)
    pipelines = {
        "pipelines/collector.md", "pipelines/streaming.beam.md", "pipelines/streaming.cdc.md",
        "pipelines/dbt.md", "pipelines/dagster.md",
    }  # fmt: skip
    assert pipelines <= set(pages)
    index = pages["index.md"]
    for path in pages:
        if path != "index.md":
            assert f"]({path})" in index, path
    for path, text in pages.items():
        for heading in ("## Troubleshooting",) if path != "index.md" else ():
            assert heading in text, path


def test_asset_pages_carry_layout_owner_sla_lineage_schema_checks(pages: dict[str, str]) -> None:
    events = pages["assets/staging/stg_events.md"]
    assert (
        "`staging.stg_events`, partitioned by `event_date` (day), clustered by `event_name`, "
        "`anonymous_id`" in events
    )
    assert "| Owner | team:data-platform |" in events
    assert "| Partitions | Daily, starting 2025-01-01 UTC." in events
    assert "```mermaid" in events and "raw_events --> staging_stg_events" in events
    assert "| `event_date` | DATE | UTC date of event_timestamp" in events
    assert "--select 'staging/stg_events' --partition YYYY-MM-DD" in events
    orders = pages["assets/mart/fct_orders.md"]
    assert "| Owner | team:analytics-engineering |" in orders
    assert "older than 30 min, warns after 15 min" in orders
    assert "| `unique_fct_orders_order_id` | yes |" in orders  # blocking dbt test
    assert "| `order_id` | int64 | Primary key. | not_null, unique |" in orders  # its contract
    raw = pages["assets/raw/events.md"]
    assert "Check `freshness`: column received_at, error_after 30 min." in raw
    assert "[collector](../../pipelines/collector.md)" in raw


def test_pipeline_pages_come_from_the_code(pages: dict[str, str]) -> None:
    collector = pages["pipelines/collector.md"]
    assert "| POST | `/v1/batch` | Send a batch of events | `batch_endpoint` |" in collector
    assert "| POST | `/v1/t` | Send one track event (analytics.js short path) |" in collector
    assert "| GET | `/readyz` |" in collector
    beam = pages["pipelines/streaming.beam.md"]
    assert "`ParseEvents`" in beam and "Write raw lake: WriteRawParquet" in beam
    cdc = pages["pipelines/streaming.cdc.md"]
    assert "`streaming.cdc.bridge`" in cdc and "dead-letter topic" in cdc
    dagster = pages["pipelines/dagster.md"]
    assert "cron `15 1 * * *`" in dagster and "`sql_optimizer_after_prepare`" in dagster
    assert "Funnel per device type" in pages["pipelines/dbt.md"]


def test_llm_prose_is_optional_marked_and_not_checked(
    pages: dict[str, str], tmp_path: Path
) -> None:
    path = "assets/mart/fct_orders.md"
    model = ScriptedToolChatModel(replies=[{"overview": "One row per order. Watch freshness."}])
    page, problem = write_prose(pages[path], ModelChoice(model, "scripted model"), timeout=5)
    assert problem is None
    assert BEGIN in page and "**Overview written by an LLM** (scripted model;" in page
    assert page.index("# mart/fct_orders") < page.index(BEGIN) < page.index("| Group |")
    assert '<data name="page">' in model.prompt_text(0)
    write_site(tmp_path, {path: page})
    assert stale_files(tmp_path, {path: pages[path]}) == []  # prose is not a fact to check
    write_site(tmp_path, {path: pages[path]})  # regenerating without --llm keeps it
    assert BEGIN in (tmp_path / path).read_text()
    unchanged, problem = write_prose(pages[path], ModelChoice(None, "none", "no credentials"), 5)
    assert unchanged == pages[path] and "no credentials" in (problem or "")


def test_generator_reads_no_module_by_name(pages: Any) -> None:
    """It walks packages and the code location named in pyproject: moving modules around
    changes the pages, not the generator."""
    source = "\n".join(
        p.read_text() for p in (ROOT / "platform_assets" / "genai" / "docgen").glob("*.py")
    )
    for module in (
        "collector.app",
        "streaming.beam",
        "streaming.cdc",
        "platform_assets.definitions",
    ):
        assert f'"{module}' not in source and f"import {module}" not in source, module
