"""The rules brain: the embedded default brain that needs no model.

``RulesBrain`` speaks the ``LLM`` protocol (OpenAI-format messages and tools in, text
deltas and tool calls out), so the turn core treats it exactly like a model: it runs
the tool calls (behind approvals where the agent says so), appends the results and
asks again until the brain answers with text only.

The brain keeps no state and is deterministic: every call replays the history through
a fresh ``Dialogue`` (``rules_dialogue.py``) and answers the last input, a user message
or a tool result. Intents and phrasings come from the agent file (``rulebook.py``),
slots from the user's words (``slots.py``). An opening turn (the history ends with the
``<initial-turn>`` system note) is answered with the greeting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from parley.brain.dates import say_time
from parley.brain.history import INITIAL_TURN_MARKER, INTERRUPTED_NOTE
from parley.brain.rulebook import RuleBook
from parley.brain.rules_dialogue import Dialogue, Reply
from parley.brain.typos import TypingFixer
from parley.clock import Clock, SystemClock
from parley.config import AgentSpec
from parley.engines.base import LLMChunk, TextDelta, ToolCallRequest

log = logging.getLogger(__name__)

Messages = Sequence[Mapping[str, Any]]


class RulesBrain:
    """An ``LLM`` made of the agent's rules: intents, slots and a booking flow."""

    def __init__(self, agent: AgentSpec, clock: Clock | None = None) -> None:
        self.agent = agent
        self.book = RuleBook(agent)
        self.clock: Clock = clock or SystemClock()
        self.zone = ZoneInfo(agent.time_zone)
        words = [k for r in agent.rules for k in r.keywords]
        words += [k for f in agent.faq for k in f.keywords] + [d.name for d in agent.menu]
        self.fixer = TypingFixer(words)

    def today(self) -> dt.date:
        """Today in the agent's time zone, from the injected clock."""
        return self.clock.now().astimezone(self.zone).date()

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk]:
        """The reply as word-sized text deltas, then at most one tool call."""
        reply = self.respond(messages, tools)
        for piece in re.findall(r"\S+\s*", reply.text):
            yield TextDelta(piece)
        if reply.tool is not None:
            yield ToolCallRequest(
                id=tool_call_id(messages),
                name=reply.tool,
                arguments=reply.arguments,
                raw_arguments=json.dumps(reply.arguments),
            )

    def respond(self, messages: Messages, tools: Sequence[Mapping[str, Any]]) -> Reply:
        """The whole reply at once (what ``stream`` sends, in one piece)."""
        if _is_initial_turn(messages):
            return Reply(self.book.greeting())
        now = self.clock.now().astimezone(self.zone)
        now_time = say_time(f"{now.hour:02d}:{now.minute:02d}")
        dialogue = Dialogue(self.book, tool_parameters(tools), now.date(), self.fixer, now_time)
        reply = _replay(dialogue, messages)
        log.debug("rules brain: tool=%s awaiting=%s", reply.tool, reply.awaiting)
        return reply


def _replay(dialogue: Dialogue, messages: Messages) -> Reply:
    """Feed the history to ``dialogue``; the reply to its last input is the answer."""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    reply = Reply()
    last = len(messages) - 1
    for i, msg in enumerate(messages):
        role = msg.get("role")
        if role == "user":
            reply = dialogue.on_user(message_text(msg))
        elif role == "assistant":
            calls.update(_tool_calls(msg))
            if msg.get("interrupted"):
                dialogue.on_interrupted()
            reply = Reply()
        elif role == "tool":
            name, arguments = calls.get(str(msg.get("tool_call_id")), ("", {}))
            status, result = tool_outcome(msg.get("content"))
            heard = i == last or messages[i + 1].get("role") != "user"
            reply = dialogue.on_tool_result(name, arguments, status, result, heard=heard)
        elif role == "system" and message_text(msg).strip() == INTERRUPTED_NOTE:
            dialogue.on_interrupted()
    return reply


def _is_initial_turn(messages: Messages) -> bool:
    if not messages:
        return True
    last = messages[-1]
    return last.get("role") == "system" and message_text(last).startswith(INITIAL_TURN_MARKER)


def message_text(msg: Mapping[str, Any]) -> str:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _tool_calls(msg: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for call in msg.get("tool_calls") or []:
        fn = call.get("function") or {}
        raw = fn.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
        except (json.JSONDecodeError, TypeError, ValueError):
            arguments = {}
        out[str(call.get("id"))] = (
            str(fn.get("name", "")),
            arguments if isinstance(arguments, dict) else {},
        )
    return out


def tool_outcome(content: Any) -> tuple[str, Any]:
    """``(status, payload)`` of a tool message: ``{"status": "ok", "result": ...}``,
    ``{"status": "denied", "reason": ...}`` or ``{"status": "error", "error": ...}``.
    Anything else is taken as an ``ok`` result as it is."""
    try:
        data = json.loads(content) if isinstance(content, str) else content
    except json.JSONDecodeError:
        return "ok", content
    if isinstance(data, dict) and data.get("status") in ("ok", "error", "denied"):
        status = str(data["status"])
        if status == "ok" and "result" in data:
            return status, data["result"]
        if status != "ok":
            return status, data.get("error") or data.get("reason")
    return "ok", data


def tool_parameters(tools: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Offered tools by name → their JSON-schema ``parameters`` (OpenAI or flat form)."""
    out: dict[str, dict[str, Any]] = {}
    for tool in tools:
        inner = tool.get("function")
        fn: Mapping[str, Any] = inner if isinstance(inner, Mapping) else tool
        name = fn.get("name")
        if isinstance(name, str):
            params = fn.get("parameters")
            out[name] = dict(params) if isinstance(params, Mapping) else {}
    return out


def tool_call_id(messages: Messages) -> str:
    """``call_<n>_<digest>``: n counts the tool calls so far, the digest of the history
    keeps ids unique even when an old part of the history was summarised away."""
    count = sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")
    blob = json.dumps(list(messages), sort_keys=True, default=str, ensure_ascii=False)
    return f"call_{count}_{hashlib.sha256(blob.encode()).hexdigest()[:8]}"
