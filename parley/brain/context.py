"""Context compression: what of a long conversation the LLM sees.

Theory of operation. The store keeps every message for ever; only the model's view
is shortened. Before each model call the brain asks ``ContextWindow.messages`` for
the chat-completions list. The view is ``system prompt + [summary] + recent
messages``, where the summary covers every message up to a stored cut
(``agent_state["_context"]``: the id of the last summarised message and the text).

While the view (without the system prompt) fits ``max_tokens`` it is reused as it
is: the summary is not recomputed every turn. When it no longer fits, a new cut is
placed so that the messages after it fit ``keep_recent_tokens``, at a user message
(so a tool call is never separated from its results), and the messages between the
old and the new cut are folded into the summary by one model call. If that call
fails, a plain extract stands in for it, so a turn never fails on compression.

Token counts are estimates (about four characters a token): good enough for a
budget that keeps a margin, and free. The rules brain is exempt: it reads its
dialogue state from the whole history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from parley.brain.history import to_model_messages
from parley.config import ContextSpec
from parley.engines.base import LLM, EngineError, TextDelta
from parley.sessions.records import Message

log = logging.getLogger(__name__)

STATE_KEY = "_context"
SUMMARY_PREFIX = "Summary of the earlier conversation (older messages are not shown):\n"
SUMMARY_INSTRUCTIONS = (
    "<context-summary> You keep the running summary of a conversation between a user "
    "and an assistant. Merge the previous summary (if any) with the new messages into "
    "one short summary in plain sentences: names, dates, numbers, decisions, open "
    "requests and anything the assistant promised. No preamble."
)
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """A cheap estimate of the tokens a list of chat messages costs."""
    total = 0
    for msg in messages:
        content = msg.get("content") or ""
        size = len(content) if isinstance(content, str) else len(json.dumps(content))
        if msg.get("tool_calls"):
            size += len(json.dumps(msg["tool_calls"]))
        total += size // CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS
    return total


@dataclass(frozen=True)
class Summary:
    """The stored summary: it covers every message up to and including ``upto``."""

    upto: str
    text: str

    @classmethod
    def from_state(cls, agent_state: dict[str, Any]) -> Summary | None:
        raw = agent_state.get(STATE_KEY)
        if not isinstance(raw, dict):
            return None
        upto, text = raw.get("upto"), raw.get("summary")
        if isinstance(upto, str) and isinstance(text, str):
            return cls(upto, text)
        return None

    def to_state(self) -> dict[str, Any]:
        return {"upto": self.upto, "summary": self.text}


@dataclass(frozen=True)
class Plan:
    """What to send: ``summary`` then ``history[start:]``; ``fold`` is the slice of
    the history a new summary must take in (``None``: reuse the stored one)."""

    start: int
    fold: tuple[int, int] | None = None


def _recent_tokens(history: Sequence[Message]) -> list[int]:
    """Tokens of ``history[i:]`` for every i (one pass from the end)."""
    costs = [0] * (len(history) + 1)
    for i in range(len(history) - 1, -1, -1):
        costs[i] = costs[i + 1] + estimate_tokens(to_model_messages("", [history[i]])[1:])
    return costs


def plan(history: Sequence[Message], summary: Summary | None, spec: ContextSpec) -> Plan:
    """Decide the view of ``history`` (pure: no I/O, no model call)."""
    start = 0
    if summary is not None:
        ids = [m.id for m in history]
        if summary.upto in ids:
            start = ids.index(summary.upto) + 1
    if spec.max_tokens is None:
        return Plan(start)
    costs = _recent_tokens(history)
    summary_cost = estimate_tokens([{"content": summary.text}]) if summary else 0
    if summary_cost + costs[start] <= spec.max_tokens:
        return Plan(start)
    # A cut at a user message, as early as keeps the rest within keep_recent_tokens;
    # if even the last user message starts a longer tail, cut there anyway.
    boundaries = [i for i in range(start + 1, len(history)) if history[i].role == "user"]
    if not boundaries:
        return Plan(start)
    cut = next((i for i in boundaries if costs[i] <= spec.keep_recent_tokens), boundaries[-1])
    return Plan(cut, (start, cut))


async def summarize(
    llm: LLM, previous: str | None, messages: Sequence[Message], max_tokens: int
) -> str:
    """Fold ``messages`` into ``previous`` with one model call; an extract if it fails."""
    transcript = "\n".join(f"{m.role}: {m.text}" for m in messages if m.text)
    prompt = (f"Previous summary:\n{previous}\n\n" if previous else "") + (
        f"New messages:\n{transcript}"
    )
    request = [
        {"role": "system", "content": SUMMARY_INSTRUCTIONS},
        {"role": "user", "content": prompt},
    ]
    limit = max_tokens * CHARS_PER_TOKEN
    try:
        parts = [c.text async for c in llm.stream(request, []) if isinstance(c, TextDelta)]
        text = "".join(parts).strip()
    except EngineError as exc:
        log.warning("context summary failed (%s); keeping an extract instead", exc)
        text = ""
    if not text:
        text = ((previous or "") + "\n" + transcript).strip()[-limit:]
    return text[:limit]


class ContextWindow:
    """The model's view of one session's history, with the summary kept in its state."""

    def __init__(self, spec: ContextSpec, llm: LLM) -> None:
        self.spec = spec
        self.llm = llm

    async def messages(
        self, system_prompt: str, history: Sequence[Message], agent_state: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], Summary | None]:
        """The chat messages to send, and a new summary to store (None: unchanged)."""
        summary = Summary.from_state(agent_state)
        decided = plan(history, summary, self.spec)
        new = None
        if decided.fold is not None:
            lo, hi = decided.fold
            text = await summarize(
                self.llm,
                summary.text if summary else None,
                history[lo:hi],
                self.spec.summary_max_tokens,
            )
            summary = new = Summary(history[hi - 1].id, text)
        out = to_model_messages(system_prompt, list(history[decided.start :]))
        if summary is not None and decided.start > 0:
            out.insert(1, {"role": "system", "content": SUMMARY_PREFIX + summary.text})
        return out, new
