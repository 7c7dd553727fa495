"""A scripted chat model that supports tool calling, for tests of the real LangChain chains.

langchain-core's fake chat models (FakeListChatModel, GenericFakeChatModel, ...) do not
implement `bind_tools`, so `with_structured_output` refuses them. This one does: each call
answers with the next scripted reply, so a test drives `prompt | model.with_structured_output
(Schema)` exactly as production drives ChatVertexAI, and sees every prompt it was sent.

Replies: a dict (a tool call of the bound schema with these arguments), a str (a plain text
answer, i.e. no tool call), an AIMessage (as is), an exception (raised), or a callable
(called with the messages; returns any of the above).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field


class ScriptedToolChatModel(BaseChatModel):
    replies: list[Any]
    delay_seconds: float = 0.0
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-chat-model"

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable:
        names = [convert_to_openai_tool(tool)["function"]["name"] for tool in tools]
        self.bound_tools = names
        return self.bind(tool_names=names, tool_choice=tool_choice)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(list(messages))
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        reply = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        if callable(reply) and not isinstance(reply, type):
            reply = reply(messages)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, dict):
            names = kwargs.get("tool_names") or self.bound_tools or ["tool"]
            reply = AIMessage(
                content="",
                tool_calls=[{"name": names[0], "args": reply, "id": f"call_{len(self.calls)}"}],
            )
        elif isinstance(reply, str):
            reply = AIMessage(content=reply)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def prompt_text(self, call: int = -1) -> str:
        """Everything sent in one call, as text."""
        return "\n".join(str(m.content) for m in self.calls[call])
