"""The one brain every channel calls: user turns, the opening turn, approval decisions.

``Brain.user_turn``, ``Brain.initial_turn`` and ``Brain.decide`` each return a
``TurnStream`` (see ``turn_stream.py``). The body of every turn is the same loop:
settle what a previous turn left open (decided approvals, tool calls a crash left
dangling), then ask the model (an LLM or the rules brain, both behind the ``LLM``
protocol), stream its text, run its tool calls — or park them behind a human
approval — and go round again until the model answers with text only.

Policy: a user message sent while an approval is pending is read as an answer
where it is one ("sure", "go ahead" approve; "no", "don't" deny — ``answers.py``),
recorded as ``decided_by: "user"``; any other message **denies** it (recorded in the
history as ``decided_by: "user_message"``) and the conversation moves on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from parley.brain import errors
from parley.brain.approval_claim import claim_approval
from parley.brain.approval_words import decide_in_words
from parley.brain.client_tools import ClientTools
from parley.brain.context import STATE_KEY as CONTEXT_STATE_KEY
from parley.brain.context import ContextWindow
from parley.brain.draft import DraftReply
from parley.brain.history import INITIAL_TURN_PROMPT, to_model_messages, unanswered_tool_calls
from parley.brain.message_blocks import reply_blocks, result_blocks
from parley.brain.recorder import persist
from parley.brain.runtime import AgentRuntime
from parley.brain.tools import ToolContext
from parley.brain.turn_stream import RunningTurns, TurnProgress, TurnStream
from parley.clock import Clock, SystemClock
from parley.engines.base import EngineError, TextDelta, ToolCallRequest
from parley.events import (
    ApprovalRequested,
    ApprovalResolved,
    AssistantDelta,
    AssistantMessage,
    ClientToolCall,
    Error,
    Event,
    ToolCallCompleted,
    ToolCallStarted,
    Transfer,
    TurnEnd,
    UiOp,
)
from parley.sessions.coordinator import Coordinator
from parley.sessions.lease import Sleep, TurnLock, attached_channel
from parley.sessions.records import Approval, Session
from parley.sessions.store import Store
from parley.text_guard import storable_value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserInput:
    """What the user said or did. ``ui_action`` is a clicked card: ``{"msg", "display"}``."""

    text: str
    channel: str = "chat"
    ui_action: dict[str, Any] | None = None


class Brain:
    def __init__(
        self,
        store: Store,
        coordinator: Coordinator,
        runtimes: dict[str, AgentRuntime],
        *,
        clock: Clock | None = None,
        turn_lock_ttl_s: float = 120.0,
        busy_wait_s: float = 120.0,
        sleep: Sleep = asyncio.sleep,
        max_tool_rounds: int = 6,
    ) -> None:
        """``turn_lock_ttl_s`` is how long a turn lock outlives a dead worker; it is
        renewed on ``sleep``, so pass a short TTL (``PARLEY_TURN_LOCK_TTL_S``, 5 s)
        together with a ``sleep`` on the same clock as the coordinator's TTLs."""
        self.store = store
        self.coordinator = coordinator
        self.runtimes = runtimes
        self.clock = clock or SystemClock()
        self.turn_lock_ttl_s = turn_lock_ttl_s
        self.busy_wait_s = busy_wait_s
        self.sleep = sleep
        self.max_tool_rounds = max_tool_rounds
        self.active: RunningTurns = {}  # running turns of this worker, by session
        # Set by the app: opens a transfer a tool asked for (session, transfer id, reason).
        self.on_transfer: Callable[[str, str, str], Awaitable[None]] | None = None

    @property
    def lock_ttl_s(self) -> float:
        """How long a voice turn waits for a busy session (the voice code's spelling)."""
        return self.busy_wait_s

    async def drain(self) -> None:
        """Wait for the running turns of this worker to finish (server shutdown)."""
        for turn in list(self.active.values()):
            await turn.wait()

    def _turn(
        self,
        session_id: str,
        channel: str,
        body: Callable[[TurnProgress], AsyncIterator[Event]],
        checks: tuple[Callable[[Session], Awaitable[None]], ...] = (),
        **options: Any,
    ) -> TurnStream:
        lock = TurnLock(self.coordinator, session_id, self.turn_lock_ttl_s, sleep=self.sleep)
        return TurnStream(
            self.store, lock, self.active, session_id, channel, body, checks, **options
        )

    # --- public entry points ---------------------------------------------------------

    def user_turn(
        self,
        session_id: str,
        user: UserInput,
        client_tools: ClientTools | None = None,
        draft: DraftReply | None = None,
    ) -> TurnStream:
        """``client_tools``: tools the client declared; a call of one ends the turn
        with ``ClientToolCall`` (answered later with ``tool_outputs``). ``draft``: a
        preemptive reply to these words, used for the first model call if it matches
        (``draft.py``)."""

        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            answered = []
            if user.ui_action is None:  # a clicked card is never an answer
                runtime = self.runtime_for(state.session)
                answered = await decide_in_words(self.store, runtime, state.session.id, user.text)
            for resolved in answered:
                yield resolved
            async for ev in self._settle(state, deny_pending=True):
                yield ev
            blocks: list[dict[str, Any]] = [{"type": "text", "text": user.text}]
            if user.ui_action is not None:
                blocks = [{"type": "ui_action", **user.ui_action}]
            elif answered:  # the words were the decision, not a new request for the model
                blocks = [
                    {"type": "approval_answer", "text": user.text, "status": answered[0].status}
                ]
            await state.recorder.close_dangling_user_message()
            await state.recorder.add("user", user.text, blocks)
            async for ev in self._model_loop(state, client_tools=client_tools, draft=draft):
                yield ev

        return self._turn(session_id, user.channel, body, (self._channel_check(user.channel),))

    def tool_outputs(
        self,
        session_id: str,
        outputs: list[tuple[str, str]],
        *,
        channel: str,
        client_tools: ClientTools | None = None,
        user_text: str = "",
    ) -> TurnStream:
        """The client's outputs ``(tool_call_id, output)`` of its own tools that the
        model called in an earlier turn, stored as their results; then the user's new
        text (if any) and the model goes on. An id that is not an unanswered call
        (answered meanwhile, e.g. by a newer user message) is left out."""

        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            history = await state.recorder.load_history()
            names = {c["id"]: c["name"] for c in unanswered_tool_calls(history)}
            for call_id, output in outputs:
                if call_id in names:
                    await self._store_result(state, call_id, names[call_id], "ok", output)
            async for ev in self._settle(state, deny_pending=True):
                yield ev
            if user_text:
                await state.recorder.close_dangling_user_message()
                await state.recorder.add("user", user_text, [{"type": "text", "text": user_text}])
            async for ev in self._model_loop(state, client_tools=client_tools):
                yield ev

        return self._turn(session_id, channel, body, (self._channel_check(channel),))

    def initial_turn(self, session_id: str, channel: str = "chat") -> TurnStream:
        async def not_started(session: Session) -> None:
            if await self.store.count_messages(session.id, ("user", "assistant")) > 0:
                raise errors.already_started()

        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            async for ev in self._model_loop(state, initial=True):
                yield ev

        checks = (self._channel_check(channel), not_started)
        return self._turn(session_id, channel, body, checks)

    def decide(
        self,
        session_id: str,
        tool_call_id: str,
        approved: bool,
        *,
        decided_by: str = "user",
        reason: str | None = None,
        channel: str = "chat",
        then_model: bool = True,
    ) -> TurnStream:
        """Decide a pending approval. The claim is atomic (first decision wins); the
        winner continues the turn under the lock, a loser hears the winning status.
        ``then_model=False``: the turn ends once the approval is settled (a
        speech-to-speech upstream model goes on by itself when given the result)."""
        status: Literal["approved", "denied"] = "approved" if approved else "denied"

        async def claim() -> list[Event] | None:
            return await claim_approval(
                self.store, session_id, tool_call_id, status, decided_by, reason
            )

        async def body(state: TurnProgress) -> AsyncIterator[Event]:
            yield ApprovalResolved(tool_call_id, "approved" if approved else "denied", decided_by)
            async for ev in self._settle(state, deny_pending=False):
                yield ev
            pending = await self.store.list_approvals(state.session.id, "pending")
            if pending or not then_model:
                yield TurnEnd("awaiting_approval" if pending else "completed", state.session.status)
                return
            async for ev in self._model_loop(state):
                yield ev

        def recorded_while_busy() -> list[Event]:
            # The decision won, but another turn holds the session: that turn (or the
            # next one) settles it — runs the tool or records the denial — exactly once.
            return [
                ApprovalResolved(tool_call_id, status, decided_by),
                Error("session_busy", "decision recorded; it takes effect in the running turn"),
                TurnEnd("completed", "active"),
            ]

        return self._turn(session_id, channel, body, preface=claim, when_busy=recorded_while_busy)

    def runtime_for(self, session: Session) -> AgentRuntime:
        return self.runtimes[session.agent]

    # --- checks ------------------------------------------------------------------------

    def _channel_check(self, channel: str) -> Callable[[Session], Awaitable[None]]:
        """A turn from ``channel`` is refused while another channel's live attachment
        (a lease in the coordinator, see ``sessions/lease.py``) holds the session."""

        async def check(session: Session) -> None:
            current = await attached_channel(self.coordinator, session.id)
            if current is not None and current != channel and current != "chat":
                raise errors.wrong_channel(current)

        return check

    # --- settle: decided approvals and dangling tool calls -------------------------------

    async def _settle(self, state: TurnProgress, *, deny_pending: bool) -> AsyncIterator[Event]:
        session = state.session
        history = await state.recorder.load_history()
        for call in unanswered_tool_calls(history):
            record = await self.store.get_approval(session.id, call["id"])
            if record is not None and record.status == "pending":
                if not deny_pending:
                    continue
                won, record = await self.store.claim_approval(
                    session.id,
                    call["id"],
                    "denied",
                    "user_message",
                    "The user sent a new message instead of deciding.",
                )
                if won:
                    yield ApprovalResolved(call["id"], "denied", "user_message")
            if record is not None and record.status == "approved":
                async for ev in self._run_tool(
                    state, call["id"], call["name"], call["arguments"], approval=record
                ):
                    yield ev
            elif record is not None and record.status == "denied":
                reason = record.reason or "The user declined."
                yield await self._store_result(
                    state, call["id"], call["name"], "denied", reason, approval=record
                )
            else:
                note = "The tool call was interrupted before it completed; it did not run."
                yield await self._store_result(state, call["id"], call["name"], "error", note)

    # --- the model loop ------------------------------------------------------------------

    async def _model_loop(
        self,
        state: TurnProgress,
        *,
        initial: bool = False,
        client_tools: ClientTools | None = None,
        draft: DraftReply | None = None,
    ) -> AsyncIterator[Event]:
        runtime = self.runtime_for(state.session)
        recorder = state.recorder
        agent, session = runtime.agent, state.session
        system_prompt = agent.render_instructions(session.template_vars, self.clock.now())
        tools = [] if initial else runtime.tool_schemas()
        client = client_tools or ClientTools()
        if not initial:
            tools += client.offered(runtime.tools)
        for _ in range(self.max_tool_rounds):
            messages = await self._model_view(state, runtime, system_prompt)
            if initial:
                messages.append({"role": "system", "content": INITIAL_TURN_PROMPT})
            recorder.begin_reply()
            calls: list[ToolCallRequest] = []
            drafted = await draft.claim(messages, tools) if draft is not None else None
            draft = None  # only the first model call
            try:
                async for chunk in drafted or runtime.llm.stream(messages, tools):
                    if isinstance(chunk, TextDelta):
                        if chunk.text:
                            recorder.on_delta(chunk.text)
                            yield AssistantDelta(chunk.text)
                    else:
                        calls.append(chunk)
            except asyncio.CancelledError:
                await recorder.cut_reply(state.heard)
                raise
            except EngineError as exc:
                log.warning("model failed in session %s: %s", state.session.id, exc)
                if recorder.partial:
                    yield await self._store_assistant(state, "".join(recorder.partial), [])
                yield Error(exc.code, str(exc))
                yield TurnEnd("error", state.session.status)
                return
            text = "".join(recorder.partial)
            if text or calls:
                stored = await self._store_assistant(state, text, calls)
                if text:
                    yield stored
            if not calls:
                yield TurnEnd("completed", state.session.status)
                return
            awaiting = for_client = False
            for call in calls:
                if call.name in client.names and call.name not in runtime.tools:
                    for_client = True  # the client runs it and answers with its output
                    yield ClientToolCall(
                        call.id, call.name, call.raw_arguments or json.dumps(call.arguments)
                    )
                    continue
                async for ev in self._handle_call(state, runtime, call):
                    if isinstance(ev, ApprovalRequested):
                        awaiting = True
                    yield ev
            if awaiting:
                yield TurnEnd("awaiting_approval", state.session.status)
                return
            if for_client:
                yield TurnEnd("completed", state.session.status)
                return
        yield Error("tool_rounds_exceeded", f"stopped after {self.max_tool_rounds} tool rounds")
        yield TurnEnd("error", state.session.status)

    async def _model_view(
        self, state: TurnProgress, runtime: AgentRuntime, system_prompt: str
    ) -> list[dict[str, Any]]:
        """The chat messages for one model call; an LLM brain's long history is
        compressed (``context.py``), the new summary kept in the session's state."""
        history = await state.recorder.load_history()
        if runtime.brain_kind != "llm":
            return to_model_messages(system_prompt, history)
        window = ContextWindow(runtime.agent.context, runtime.llm)
        session = state.session
        messages, summary = await window.messages(system_prompt, history, session.agent_state)
        if summary is not None:
            session.agent_state = {**session.agent_state, CONTEXT_STATE_KEY: summary.to_state()}
            await persist(self.store.update_session(session.id, agent_state=session.agent_state))
        return messages

    async def _handle_call(
        self, state: TurnProgress, runtime: AgentRuntime, call: ToolCallRequest
    ) -> AsyncIterator[Event]:
        bound = runtime.tools.get(call.name)
        if call.error is not None:
            yield Error("llm_bad_tool_arguments", f"{call.name}: {call.error}")
            yield await self._store_result(
                state, call.id, call.name, "error", f"invalid arguments: {call.error}"
            )
        elif bound is None:
            yield await self._store_result(
                state, call.id, call.name, "error", f"unknown tool {call.name!r}"
            )
        elif bound.spec.requires_approval:
            prompt = runtime.approval_prompt(call.name, call.arguments)
            await persist(
                self.store.create_approval(
                    Approval(
                        session_id=state.session.id,
                        tool_call_id=call.id,
                        name=call.name,
                        arguments=call.arguments,
                        status="pending",
                        prompt=prompt,
                    )
                )
            )
            yield ApprovalRequested(call.id, call.name, call.arguments, prompt)
        else:
            async for ev in self._run_tool(state, call.id, call.name, call.arguments):
                yield ev

    async def _run_tool(
        self,
        state: TurnProgress,
        call_id: str,
        name: str,
        arguments: dict[str, Any],
        approval: Approval | None = None,
    ) -> AsyncIterator[Event]:
        runtime = self.runtime_for(state.session)
        bound = runtime.tools.get(name)
        if bound is None:
            yield await self._store_result(state, call_id, name, "error", f"unknown tool {name!r}")
            return
        yield ToolCallStarted(call_id, name, arguments, bound.spec.filler)
        agent_state = dict(state.session.agent_state)
        ctx = ToolContext(state.session.id, runtime.agent, agent_state)
        outcome = await bound.execute(ctx, arguments)
        for op in outcome.ui_ops:
            yield UiOp(storable_value(op))
        if agent_state != state.session.agent_state:
            state.session.agent_state = agent_state
            await persist(self.store.update_session(state.session.id, agent_state=agent_state))
        yield await self._store_result(
            state,
            call_id,
            name,
            outcome.status,
            outcome.result,
            approval=approval,
            ui_ops=outcome.ui_ops,
        )
        if outcome.transfer_reason is not None:
            yield await self._open_transfer(state.session.id, outcome.transfer_reason)

    async def _open_transfer(self, session_id: str, reason: str) -> Transfer:
        """A tool asked for a person: the channel layer opens the transfer; the turn
        reports it ``requested`` (or ``failed`` with ``error`` if it could not)."""
        transfer_id = f"tr_{uuid.uuid4().hex[:16]}"
        if self.on_transfer is None:
            return Transfer(transfer_id, "failed", "error")
        try:
            await self.on_transfer(session_id, transfer_id, reason)
        except Exception:
            log.exception("session %s: opening transfer %s failed", session_id, transfer_id)
            return Transfer(transfer_id, "failed", "error")
        return Transfer(transfer_id, "requested", reason)

    # --- persistence -----------------------------------------------------------------------

    async def _store_assistant(
        self, state: TurnProgress, text: str, calls: list[ToolCallRequest]
    ) -> AssistantMessage:
        blocks = reply_blocks(self.runtime_for(state.session), text, calls)
        msg = await state.recorder.finish_reply(text, blocks)
        return AssistantMessage(msg.id, text, False)

    async def _store_result(
        self,
        state: TurnProgress,
        call_id: str,
        name: str,
        status: str,
        result: Any,
        *,
        approval: Approval | None = None,
        ui_ops: tuple[dict[str, Any], ...] = (),
    ) -> ToolCallCompleted:
        result = storable_value(result)  # a tool's text is server-derived: cleaned, never refused
        ui_ops = tuple(storable_value(op) for op in ui_ops)
        blocks = result_blocks(call_id, name, status, result, approval, ui_ops)
        await state.recorder.add("tool", f"{name}: {status}", blocks)
        return ToolCallCompleted(call_id, name, status, result)  # type: ignore[arg-type]
