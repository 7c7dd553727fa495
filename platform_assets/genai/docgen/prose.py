"""Optional LLM prose: a short overview per page, marked as such, never part of the check.

`make docs` is complete without it. `python -m platform_assets.genai.docgen --llm` asks the
configured model (Gemini through LangChain, structured output) for a two or three sentence
overview of each asset and pipeline page, from the page's own generated content, quoted as
data. The overview sits between markers; regenerating without `--llm` keeps it, and the
staleness check ignores it (an LLM's wording is not a fact about the code).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from platform_assets.genai.llm import LLMUnavailable, ModelChoice, structured_call
from platform_assets.genai.prompting import DATA_RULES, quote_data

BEGIN = "<!-- llm-prose:begin -->"
END = "<!-- llm-prose:end -->"
BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n\n", re.DOTALL)

SYSTEM_PROMPT = (
    "You write the opening paragraph of an engineering documentation page for a data "
    "platform, for a new engineer: what the thing is for, where it sits, what to watch. "
    "Two or three plain sentences, no lists, no headings, only facts present in the page. "
    + DATA_RULES
)
HUMAN_PROMPT = "Write the overview of this page.\n\n{page}"


class PageProse(BaseModel):
    overview: str = Field(description="Two or three sentences for a new engineer.")


def strip_prose(text: str) -> str:
    return BLOCK.sub("", text)


def existing_prose(text: str) -> str | None:
    match = BLOCK.search(text)
    return match.group(0) if match else None


def insert_prose(page: str, block: str) -> str:
    """The block right after the page's title."""
    title = page.index("\n# ") + 1
    title_end = page.index("\n", title) + 1  # the title line, then a blank line
    return page[:title_end] + "\n" + block + page[title_end + 1 :]


def prose_block(overview: str, label: str) -> str:
    text = " ".join(overview.split())
    return (
        f"{BEGIN}\n> **Overview written by an LLM** ({label}; not checked by `make docs-check`): "
        f"{text}\n{END}\n\n"
    )


def write_prose(page: str, choice: ModelChoice, timeout: float) -> tuple[str, str | None]:
    """The page with a fresh overview, or unchanged with the reason there is none."""
    if choice.model is None:
        return page, f"no LLM ({choice.reason})"
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", HUMAN_PROMPT)])
    inputs: dict[str, Any] = {"page": quote_data("page", {"markdown": strip_prose(page)})}
    try:
        prose = structured_call(prompt, choice.model, PageProse, inputs, timeout=timeout)
    except LLMUnavailable as error:
        return page, f"no overview: {error}"
    return insert_prose(strip_prose(page), prose_block(prose.overview, choice.label)), None
