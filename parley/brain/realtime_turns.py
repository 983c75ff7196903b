"""``RealtimeTurns``: what a speech-to-speech session writes, as turns of the one brain.

With ``brain: realtime`` the model upstream (``parley/s2s``) listens, talks and decides
when to call a tool; Parley keeps the one history, the tool runner and the approval gate.
Each thing the upstream reports becomes a short turn under the session's turn lock (the
same ``TurnStream`` every channel uses, so chat, the transcript export and the operator
console see one history):

* ``heard(text)``: the caller's final transcript (or typed text) stored as the user
  message; an approval still pending is denied first, as a cascaded turn does;
* ``said(text, calls, interrupted)``: the model's transcript stored as the assistant
  message with its tool calls; each call then goes through the LLM brain's own gate: it
  runs at once (``tool_call_started``/``completed``) or is parked behind an approval
  (``approval_requested``);
* ``decide(...)``: an approval claimed (first decision wins) and settled — the tool runs
  or the denial is recorded — *without* asking a model afterwards: the upstream model
  goes on once the session sends it the result;
* ``settle(...)``: an approval already claimed elsewhere (a decision over HTTP, relayed
  to the live voice session) settled in this session, as ``decide`` settles it;
* ``cut(message_id, heard)``: a stored assistant message truncated to what was heard.

The voice session consumes the events and sends tool results back upstream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Literal

from parley.brain import errors
from parley.brain.core import Brain
from parley.brain.message_blocks import reply_blocks
from parley.brain.recorder import persist
from parley.brain.turn_stream import TurnProgress, TurnStream
from parley.engines.base import ToolCallRequest
from parley.events import ApprovalResolved, AssistantMessage, Event, TurnEnd
from parley.s2s.base import HistoryTurn, S2SConfig
from parley.s2s.factory import s2s_config, tool_declarations

__all__ = ["RealtimeTurns", "upstream_config"]


class RealtimeTurns:
    """Turns of one session written for a speech-to-speech upstream."""

    def __init__(self, brain: Brain, session_id: str, channel: str) -> None:
        self.brain = brain
        self.session_id = session_id
        self.channel = channel

    def heard(self, text: str) -> TurnStream:
        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            async for ev in self.brain._settle(state, deny_pending=True):
                yield ev
            await state.recorder.close_dangling_user_message()
            await state.recorder.add("user", text, [{"type": "text", "text": text}])
            yield TurnEnd("completed", state.session.status)

        return self.brain._turn(self.session_id, self.channel, body)

    def said(
        self,
        text: str,
        calls: Sequence[tuple[str, str, Mapping[str, Any]]] = (),
        *,
        interrupted: bool = False,
    ) -> TurnStream:
        """``calls``: ``(call_id, name, arguments)`` the model made after ``text``."""
        requests = [ToolCallRequest(cid, name, dict(args)) for cid, name, args in calls]

        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            runtime = self.brain.runtime_for(state.session)
            blocks = reply_blocks(runtime, text, requests)
            message = await state.recorder.add("assistant", text, blocks, interrupted=interrupted)
            state.recorder.last = message
            if text:
                yield AssistantMessage(message.id, text, interrupted)
            for request in requests:
                async for ev in self.brain._handle_call(state, runtime, request):
                    yield ev
            pending = await self.brain.store.list_approvals(state.session.id, "pending")
            yield TurnEnd("awaiting_approval" if pending else "completed", state.session.status)

        return self.brain._turn(self.session_id, self.channel, body)

    def cut(self, message_id: str, heard: str) -> TurnStream:
        """Truncate a stored assistant message to ``heard`` (marked interrupted)."""

        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            history = await state.recorder.load_history()
            message = next((m for m in history if m.id == message_id), None)
            if message is not None and message.text != heard:
                blocks = [{"type": "text", "text": heard}] if heard else []
                blocks += [b for b in message.blocks if b.get("type") != "text"]
                await persist(
                    self.brain.store.update_message(
                        message.id, text=heard, blocks=blocks, interrupted=True
                    )
                )
                kept = dataclasses.replace(message, text=heard, interrupted=True)
                yield AssistantMessage(kept.id, heard, True)
            yield TurnEnd("completed", state.session.status)

        return self.brain._turn(self.session_id, self.channel, body)

    def decide(self, tool_call_id: str, approved: bool, by: str) -> TurnStream:
        """Claim the approval and settle it (run the tool or record the denial): the
        brain's own decision turn, ended before any model call."""
        return self.brain.decide(
            self.session_id,
            tool_call_id,
            approved,
            decided_by=by,
            channel=self.channel,
            then_model=False,
        )

    def settle(
        self, tool_call_id: str, status: Literal["approved", "denied"], by: str
    ) -> TurnStream:
        """Settle an approval another channel claimed (``status`` by ``by``): the tool
        runs or the denial is recorded, with no model call after."""
        body = self._settled(tool_call_id, status, by)
        return self.brain._turn(self.session_id, self.channel, body)

    def _settled(
        self, tool_call_id: str, status: Literal["approved", "denied"], by: str
    ) -> Callable[[TurnProgress], AsyncIterator[Event]]:
        """The body of a turn that settles a claimed approval."""

        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            yield ApprovalResolved(tool_call_id, status, by)
            async for ev in self.brain._settle(state, deny_pending=False):
                yield ev
            pending = await self.brain.store.list_approvals(state.session.id, "pending")
            yield TurnEnd("awaiting_approval" if pending else "completed", state.session.status)

        return body


async def upstream_config(brain: Brain, session_id: str) -> S2SConfig:
    """The upstream session for ``session_id``: the agent's ``realtime:`` block, its
    rendered instructions, its tools and the stored history as text turns."""
    session = await brain.store.get_session(session_id)
    if session is None:
        raise errors.session_not_found()
    runtime = brain.runtime_for(session)
    tools = tool_declarations(runtime.tool_schemas())
    history = [
        HistoryTurn(m.role, m.text)  # type: ignore[arg-type]
        for m in await brain.store.list_messages(session_id)
        if m.role in ("user", "assistant") and m.text.strip()
    ]
    instructions = runtime.agent.render_instructions(session.template_vars)
    return s2s_config(runtime.agent, instructions=instructions, tools=tools, history=history)
