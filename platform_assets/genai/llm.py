"""LLM plumbing shared by the platform's GenAI features (quality narrator, SQL optimizer, docs).

`chat_model(settings)` picks the provider (`LLM_PROVIDER`: auto = Vertex AI on gcp,
deterministic locally) and builds `ChatVertexAI` only when asked, never at import: the
import alone takes seconds and construction looks up Google credentials. A provider that
cannot be built yields no model and a reason, and callers use their deterministic path.

`structured_call` runs `prompt | model.with_structured_output(schema)` under a hard
deadline. Any failure (timeout, quota, transport, a reply that does not parse into the
schema) raises `LLMUnavailable`, which callers turn into their deterministic fallback.
"""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from platform_core.settings import Settings

log = logging.getLogger(__name__)

DETERMINISTIC_LABEL = "deterministic narrator (no LLM)"
DEFAULT_TIMEOUT_SECONDS = 30.0

T = TypeVar("T", bound=BaseModel)


class LLMUnavailable(RuntimeError):
    """The LLM gave no usable answer; `kind` is timeout, error or malformed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def resolve_provider(settings: Settings) -> str:
    provider = settings.llm_provider  # validated by the settings
    if provider == "auto":
        return "deterministic" if settings.is_local else "vertex"
    return provider


def llm_timeout(settings: Settings) -> float:
    """LLM_TIMEOUT_SECONDS, in seconds (validated positive by the settings)."""
    return settings.llm_timeout.total_seconds()


@dataclass
class ModelChoice:
    model: Any | None  # a langchain BaseChatModel, or None: use the deterministic path
    label: str  # what outputs say wrote them
    reason: str = ""  # why there is no model


def chat_model(
    settings: Settings, *, temperature: float = 0.0, max_retries: int = 1
) -> ModelChoice:
    """The configured chat model, or none (with the reason) when the provider is unavailable."""
    provider = resolve_provider(settings)
    if provider == "deterministic":
        why = (
            "LLM_PROVIDER=deterministic"
            if settings.llm_provider == "deterministic"
            else "local deployment (LLM_PROVIDER=auto)"
        )
        return ModelChoice(None, DETERMINISTIC_LABEL, why)
    try:
        from langchain_google_vertexai import ChatVertexAI

        model = ChatVertexAI(
            model_name=settings.vertex_model,
            project=settings.gcp_project,
            location=settings.gcp_region,
            temperature=temperature,
            max_retries=max_retries,
            timeout=llm_timeout(settings),
        )
    except Exception as error:  # missing credentials, bad project, package import failure
        log.warning("Vertex AI chat model unavailable, using the deterministic path: %s", error)
        return ModelChoice(None, DETERMINISTIC_LABEL, f"Vertex AI unavailable: {error}")
    return ModelChoice(model, f"{settings.vertex_model} on Vertex AI")


def structured_chain(prompt: Any, model: Any, schema: type[T]) -> Any:
    """prompt | model with structured output; the raw reply is kept to diagnose bad output."""
    return prompt | model.with_structured_output(schema, include_raw=True)


def structured_call(
    prompt: Any,
    model: Any,
    schema: type[T],
    inputs: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> T:
    """Invoke the structured chain within `timeout` seconds or raise LLMUnavailable."""
    chain = structured_chain(prompt, model, schema)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")
    future = pool.submit(chain.invoke, inputs)
    try:
        reply = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise LLMUnavailable("timeout", f"no answer within {timeout:g}s") from None
    except Exception as error:  # quota (ResourceExhausted), transport, auth ...
        raise LLMUnavailable("error", f"{type(error).__name__}: {error}") from error
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a late answer is dropped, not awaited
    if not isinstance(reply, dict):
        raise LLMUnavailable("malformed", f"unexpected reply type {type(reply).__name__}")
    if reply.get("parsing_error") is not None or reply.get("parsed") is None:
        raise LLMUnavailable("malformed", str(reply.get("parsing_error") or "nothing parsed"))
    parsed = reply["parsed"]
    try:
        return parsed if isinstance(parsed, schema) else schema.model_validate(parsed)
    except Exception as error:
        raise LLMUnavailable("malformed", str(error)) from error
