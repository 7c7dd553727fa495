"""`python -m platform_assets.genai.docgen [--check] [--out DIR] [--llm]`

Without options: (re)write docs/ from the code, the dbt manifest and the Dagster definitions.
`--check`: write nothing; exit 1 naming every stale file (`make docs-check`, run by `make
test`). `--llm`: also write an LLM overview per page (marked; ignored by the check).

The platform's settings are reset to their defaults first: the docs describe the platform as
shipped, not this machine's `.env`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from platform_assets.genai.docgen.prose import write_prose
from platform_assets.genai.docgen.site import build_site, stale_files, write_site
from platform_assets.genai.llm import chat_model, llm_timeout
from platform_core.settings import documented_settings, get_settings

ROOT = Path(__file__).resolve().parents[3]


def pin_default_settings() -> None:
    for env, _, _ in documented_settings():
        os.environ.pop(env, None)
    get_settings.cache_clear()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m platform_assets.genai.docgen")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/ is stale")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="docs directory")
    parser.add_argument("--llm", action="store_true", help="add an LLM overview to each page")
    return parser


def add_prose(pages: dict[str, str]) -> dict[str, str]:
    choice = chat_model(get_settings())
    result = {}
    for path, page in pages.items():
        if path.startswith(("assets/", "pipelines/")):
            page, problem = write_prose(page, choice, llm_timeout(get_settings()))
            if problem:
                print(f"{path}: {problem}", file=sys.stderr)
        result[path] = page
    return result


def check(out: Path, pages: dict[str, str]) -> tuple[int, list[str]]:
    """(exit code, lines naming every stale file) of `--check`."""

    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    stale = stale_files(out, pages)
    lines = [f"stale: {shown / item.path} ({item.why})" for item in stale]
    if stale:
        lines.append(f"{len(stale)} stale file(s) in {shown}/: run `make docs` and commit them")
        return 1, lines
    return 0, [f"{shown}/ is up to date ({len(pages)} files)"]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    pin_default_settings()

    pages = build_site(ROOT)
    out = args.out.resolve()
    if args.check:
        code, lines = check(out, pages)
        print("\n".join(lines))
        return code
    if args.llm:
        pages = add_prose(pages)
    written = write_site(out, pages)
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"{len(pages)} pages in {shown}/, {len(written)} written or removed")
    return 0
