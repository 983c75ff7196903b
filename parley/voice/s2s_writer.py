"""``TurnWriter``: a speech-to-speech session's stored turns, one at a time, in order.

What the model said, what the caller said, a cut answer, an approval decided: each is a
short turn under the session's turn lock (``RealtimeTurns``), queued here so they are
stored in the order they happened. Their events go to the client; a tool's result goes up
to the model (unless the model cancelled the call); an approval prompt is spoken once the
model's audio before it has played. A turn decided on another channel can ``echo`` its
events (to the HTTP answer of that decision), ending with ``turn_end`` whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from parley.events import (
    ApprovalRequested,
    ApprovalResolved,
    AssistantMessage,
    Event,
    ToolCallCompleted,
    TurnEnd,
)
from parley.s2s import base as s2s
from parley.voice.s2s_answer import ModelAnswer
from parley.voice.session import VoiceSession
from parley.voice.turns import TurnStream

log = logging.getLogger(__name__)

DRAIN_POLL_S = 0.02
CLOSE_WRITES_S = 5.0  # what close() waits for queued turns to be stored

Echo = Callable[[Event], Awaitable[None]]
Write = tuple[Callable[[], TurnStream], ModelAnswer | None, Echo | None]

__all__ = ["Echo", "TurnWriter"]


class TurnWriter:
    """See the module docstring. ``session`` is the voice session it writes for."""

    def __init__(self, session: VoiceSession, upstream: s2s.SpeechToSpeech) -> None:
        self.session = session
        self.upstream = upstream
        self.cancelled_calls: set[str] = set()  # the model withdrew them: no result goes up
        self._queue: asyncio.Queue[Write | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def write(
        self,
        make: Callable[[], TurnStream],
        answer: ModelAnswer | None = None,
        *,
        echo: Echo | None = None,
    ) -> None:
        self._queue.put_nowait((make, answer, echo))

    async def close(self) -> None:
        """Store what is queued (for a while), then stop."""
        self._queue.put_nowait(None)
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                async with asyncio.timeout(CLOSE_WRITES_S):
                    await asyncio.shield(self._task)
            self._task.cancel()

    async def _run(self) -> None:
        session = self.session
        while (item := await self._queue.get()) is not None:
            make, answer, echo = item
            ended = False
            try:
                turn = await session.responder._start_turn(make)
                if turn is None:
                    continue
                async for event in turn:
                    await self._on_event(event, answer)
                    if echo is not None:
                        ended = ended or isinstance(event, TurnEnd)
                        await echo(event)
            except Exception:
                log.exception("session %s: storing a realtime turn failed", session.session_id)
            finally:
                if echo is not None and not ended:
                    with contextlib.suppress(Exception):
                        await echo(TurnEnd("error"))

    async def _on_event(self, event: Event, answer: ModelAnswer | None) -> None:
        session, responder = self.session, self.session.responder
        if isinstance(event, TurnEnd):
            return  # the answer's own ``done`` ends it for the client
        if isinstance(event, AssistantMessage) and answer is not None:
            answer.message_id = event.message_id
        elif isinstance(event, ApprovalRequested):
            responder.awaiting_answer(event.tool_call_id)
            session.tasks.spawn(self._say_when_quiet(event.prompt))
        elif isinstance(event, ApprovalResolved):
            if event.tool_call_id == responder.pending_approval:
                responder.answered()
        elif isinstance(event, ToolCallCompleted):
            if event.tool_call_id not in self.cancelled_calls:
                result: dict[str, Any] = {"status": event.status, "result": event.result}
                await self.upstream.send_tool_result(event.tool_call_id, result)
        await session.events.emit(event)

    async def _say_when_quiet(self, text: str) -> None:
        """Speak an approval prompt once the model's audio before it has played."""
        session = self.session
        while session.audio.busy:
            await session.clock.sleep(DRAIN_POLL_S)
        session.responder.respond(None, say=text)
