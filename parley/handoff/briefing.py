"""The briefing a human hears or reads before joining a transferred conversation.

Written by the LLM when the agent has one (the same summariser as context
compression), else assembled from the history: why the caller needs a person, what
they asked for, what the agent did, and their last words.
"""

from __future__ import annotations

from collections.abc import Sequence

from parley.brain.context import summarize
from parley.engines.base import LLM
from parley.sessions.records import Message

MAX_LINES = 4


def briefing_from_history(reason: str, messages: Sequence[Message]) -> str:
    """A short plain-text briefing without a model."""
    user = [m.text for m in messages if m.role == "user" and m.text]
    done = [
        f"{r.get('name', '').replace('_', ' ')} ({r.get('status')})"
        for m in messages
        if m.role == "tool" and (r := m.tool_result()) is not None
    ]
    parts = [f"Reason for the transfer: {reason or 'the caller asked for a person'}."]
    if user:
        parts.append(f"The caller first said: “{user[0]}”.")
    if done:
        parts.append("The assistant has done: " + ", ".join(done[-MAX_LINES:]) + ".")
    if len(user) > 1:
        parts.append(f"Their last words: “{user[-1]}”.")
    return " ".join(parts)


async def write_briefing(reason: str, messages: Sequence[Message], llm: LLM | None) -> str:
    """The LLM's summary with the reason on top, or the history-based briefing."""
    if llm is None:
        return briefing_from_history(reason, messages)
    summary = await summarize(llm, None, messages, max_tokens=120)
    return f"Reason for the transfer: {reason}. {summary}"
