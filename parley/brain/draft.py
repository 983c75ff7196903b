"""``DraftReply``: the model's answer to words the user may not have finished.

Preemptive generation (``parley.voice.preemptive`` decides when): as soon as a voice
caller falls silent, ``start_draft`` asks the model what it would answer if the turn
ended there. The draft **writes nothing and sends nothing**: it reads the history,
adds the user's words in memory only, and streams the model's first answer into a
buffer. It takes no turn lock (another channel stays free to take a turn meanwhile).

No tool runs in a draft. The model's tool calls are data like its text: they wait in
the buffer and run only if the confirmed turn uses the draft — after the user's
message is stored, under the turn lock, through the same approval rules as ever. The
rounds after a tool result are never drafted.

A confirmed turn claims the draft (``claim``) for its first model call only if that
call sees exactly the messages and tools the draft was started on — the same history,
the same words, no approval settled meanwhile; otherwise the draft is cancelled and the
model is asked again, as without preemption. A draft is also skipped (``None`` from
``start_draft``'s work) when it could not match anyway: a session that is not active,
a history with unanswered tool calls or a dangling user message, or an LLM brain whose
context would be compressed first (that writes a summary).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from parley.brain.client_tools import ClientTools
from parley.brain.context import ContextWindow, Summary, plan
from parley.brain.history import to_model_messages, unanswered_tool_calls
from parley.brain.runtime import AgentRuntime
from parley.engines.base import EngineError, LLMChunk
from parley.sessions.records import Message, Session
from parley.sessions.store import Store

log = logging.getLogger(__name__)

__all__ = ["DraftReply", "start_draft"]

Prompt = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # messages, tools


class DraftReply:
    """One draft: the model's chunks for ``text``, collected as they come."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.prompt: Prompt | None = None  # set once the history is read (None: skipped)
        self.chunks: list[LLMChunk] = []
        self.error: EngineError | None = None
        self.finished = False
        self._more = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _add(self, chunk: LLMChunk) -> None:
        self.chunks.append(chunk)
        self._more.set()

    def _finish(self) -> None:
        self.finished = True
        self._more.set()

    def cancel(self) -> None:
        """Stop the model; the chunks so far are forgotten with the draft."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def claim(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk] | None:
        """The draft's chunks (buffered, then as they come) if it answered exactly this
        prompt; else None, and the draft is cancelled."""
        while self.prompt is None and not self.finished:
            self._more.clear()
            await self._more.wait()  # the history read is quick
        if self.prompt is None or self.prompt != (messages, tools):
            self.cancel()
            return None
        return self._replay()

    async def _replay(self) -> AsyncIterator[LLMChunk]:
        sent = 0
        try:
            while True:
                while sent < len(self.chunks):
                    sent += 1
                    yield self.chunks[sent - 1]
                if self.finished:
                    if self.error is not None:
                        raise self.error
                    return
                self._more.clear()
                await self._more.wait()
        finally:
            self.cancel()  # a turn cancelled mid-reply stops the model too


def start_draft(
    store: Store, runtimes: Callable[[Session], AgentRuntime], session_id: str, text: str
) -> DraftReply:
    """Start drafting the reply to ``text`` as the user turn would ask for it."""
    draft = DraftReply(text)
    runtime: AgentRuntime | None = None

    async def prepare() -> Prompt | None:
        nonlocal runtime
        session = await store.get_session(session_id)
        if session is None or session.status != "active":
            return None
        runtime = runtimes(session)
        return await draft_prompt(store, runtime, session, text)

    async def run() -> None:
        try:
            draft.prompt = await prepare()
            draft._more.set()  # a claim waiting for the prompt can compare now
            if draft.prompt is not None and runtime is not None:
                async for chunk in runtime.llm.stream(*draft.prompt):
                    draft._add(chunk)
        except EngineError as exc:
            draft.error = exc  # the confirmed turn meets it as it would have live
        except Exception:
            log.exception("a draft reply of session %s failed", session_id)
            draft.prompt = None
        finally:
            draft._finish()

    draft._task = asyncio.ensure_future(run())
    return draft


async def draft_prompt(
    store: Store, runtime: AgentRuntime, session: Session, text: str
) -> Prompt | None:
    """The messages and tools of the user turn's first model call, read-only."""
    history = await store.list_messages(session.id)
    if unanswered_tool_calls(history) or (history and history[-1].role == "user"):
        return None  # the turn would settle or close those first: no match
    user = Message(
        id="draft",
        session_id=session.id,
        seq=(history[-1].seq + 1) if history else 1,
        role="user",
        text=text,
        blocks=[{"type": "text", "text": text}],
    )
    view = [*history, user]
    system_prompt = runtime.agent.render_instructions(session.template_vars)
    tools = runtime.tool_schemas() + ClientTools().offered(runtime.tools)
    if runtime.brain_kind != "llm":
        return to_model_messages(system_prompt, view), tools
    summary = Summary.from_state(session.agent_state)
    if plan(view, summary, runtime.agent.context).fold is not None:
        return None  # the turn compresses the context first (and stores the summary)
    messages, _ = await ContextWindow(runtime.agent.context, runtime.llm).messages(
        system_prompt, view, session.agent_state
    )
    return messages, tools
