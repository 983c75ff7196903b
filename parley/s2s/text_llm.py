"""``UpstreamTextLLM``: typed chat on a ``brain: realtime`` agent with no voice session.

While a voice session is live, typed text goes up its own upstream connection (the
session's). Without one (plain chat), the chat brain still needs a model: this is the
``LLM`` behind the agent's runtime. Each model call opens a short upstream session of
the same provider and model, seeded with the chat history as text turns; the newest user
message (or, after tool results, a note carrying them) goes up as text; the output
transcript streams back as text and function calls as tool calls; the connection closes
at ``TurnComplete``. The model still speaks (its audio is dropped).

Text-only approximations: tool calls and results of earlier rounds are seeded as text
("called X", "X returned ..."), since a seeded history holds only user/assistant text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from parley.config import AgentSpec
from parley.engines.base import EngineError, LLMChunk, TextDelta, ToolCallRequest
from parley.s2s.base import (
    HistoryTurn,
    OutputTranscript,
    SpeechToSpeech,
    ToolCall,
    TurnComplete,
    UpstreamError,
)
from parley.s2s.factory import s2s_config, tool_declarations

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 60.0
UNAVAILABLE = "Sorry, I can't answer right now. Please try again in a moment."
TOOL_RESULTS_NOTE = "(Tool results: {results}. Answer the user using them.)"


class UpstreamTextLLM:
    """An ``LLM`` answered by a speech-to-speech model over a text turn."""

    def __init__(
        self,
        agent: AgentSpec,
        make_upstream: Callable[[], SpeechToSpeech],
        *,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self.agent = agent
        self.make_upstream = make_upstream
        self.timeout_s = timeout_s

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk]:
        instructions, history, prompt = split_messages(messages)
        declared = tool_declarations(tools)
        config = s2s_config(self.agent, instructions=instructions, tools=declared, history=history)
        upstream = self.make_upstream()
        try:
            async with asyncio.timeout(self.timeout_s):
                await upstream.connect(config)
                await upstream.send_text(prompt)
                async for event in upstream.events():
                    if isinstance(event, OutputTranscript) and not event.final and event.text:
                        yield TextDelta(event.text)
                    elif isinstance(event, ToolCall):
                        yield ToolCallRequest(
                            event.call_id, event.name, dict(event.args), json.dumps(event.args)
                        )
                    elif isinstance(event, TurnComplete):
                        return
                    elif isinstance(event, UpstreamError) and not event.retryable:
                        log.warning("realtime text turn failed upstream: %s", event.message)
                        raise EngineError(UNAVAILABLE, code="upstream_failed")
        except TimeoutError:
            raise EngineError(UNAVAILABLE, code="llm_timeout") from None
        finally:
            await upstream.close()


def split_messages(
    messages: Sequence[dict[str, Any]],
) -> tuple[str, list[HistoryTurn], str]:
    """Chat messages → (instructions, seeded text history, the text to send now)."""
    system = [str(m.get("content") or "") for m in messages if m.get("role") == "system"]
    turns: list[HistoryTurn] = []
    results: list[str] = []
    names: dict[str, str] = {}
    for m in messages:
        role = m.get("role")
        if role == "user":
            results = []
            turns.append(HistoryTurn("user", str(m.get("content") or "")))
        elif role == "assistant":
            text = str(m.get("content") or "")
            for call in m.get("tool_calls") or []:
                name = call["function"]["name"]
                names[call["id"]] = name
                text = (text + f" (called {name})").strip()
            if text:
                turns.append(HistoryTurn("assistant", text))
        elif role == "tool":
            name = names.get(str(m.get("tool_call_id")), "a tool")
            results.append(f"{name} returned {m.get('content')}")
    if results:  # a tool round: the model answers from the results
        return "\n\n".join(system), turns, TOOL_RESULTS_NOTE.format(results="; ".join(results))
    prompt = turns.pop().text if turns and turns[-1].role == "user" else ""
    return "\n\n".join(system), turns, prompt
