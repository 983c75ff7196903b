"""``Responder``: the agent's side of one voice session: one spoken response at a time.

Responses. One response is registered at a time (``self.response``). Starting one
is serialised (``_start_lock``): it first interrupts the registered response and
waits until that one's turn has stopped and released the session's turn lock, then
starts its own turn. So two utterances ending close together run one after the
other (the later interrupts the earlier), and a ``session_busy`` refusal always
means another channel holds the lock.

Busy policy: if a chat turn holds the session's lock when a response wants to start,
the client gets ``error{session_busy}`` once and the turn is retried as soon as
the lock frees (polled until the lock's TTL has passed), so nothing said is lost.

Interrupting (barge-in, ``interrupt``, a newer turn) clears the audio output, which
reports what the user heard; the turn is cancelled with that text, so the stored
assistant message holds only what was heard, and the client is told what was kept.

Spoken approvals: while an approval is pending, the recogniser listens for yes/no
(``set_stt_mode``) and ``pending_approval`` names the tool call to decide.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from parley.brain.answers import yes_or_no
from parley.brain.errors import TurnRejected
from parley.clock import Clock
from parley.engines.base import TTS, STTMode
from parley.events import ApprovalRequested, ApprovalResolved, Done, Error, Event, Interrupted
from parley.voice.io import AudioOutput, EventSink
from parley.voice.response import Response, Timings
from parley.voice.turns import TurnStream, VoiceTurns

log = logging.getLogger(__name__)

LOCK_POLL_SECS = 0.05
FRAME_SECS = 0.02
MakeTurn = Callable[[], TurnStream]
Spawn = Callable[[Awaitable[Any]], "asyncio.Task[Any]"]

__all__ = ["Responder", "yes_or_no"]  # yes_or_no: the one classifier, brain/answers.py


class Responder:
    """Runs the session's responses (see the module docstring)."""

    def __init__(
        self,
        *,
        turns: VoiceTurns,
        tts: TTS,
        output: AudioOutput,
        events: EventSink,
        output_rate: int,
        clock: Clock,
        spawn: Spawn,
        set_stt_mode: Callable[[STTMode], None],
    ) -> None:
        self.turns = turns
        self.tts = tts
        self.output = output
        self.events = events
        self.output_rate = output_rate
        self.clock = clock
        self._spawn = spawn
        self._set_stt_mode = set_stt_mode
        self.response: Response | None = None
        self.pending_approval: str | None = None
        self.closed = False
        self._start_lock = asyncio.Lock()
        self._stopping: asyncio.Task[None] | None = None

    @property
    def session_id(self) -> str:
        return self.turns.session_id

    @property
    def speaking(self) -> bool:
        """A response that will be heard is running, or audio is queued or playing:
        its text can wait for the audio (``TextInStep``)."""
        response = self.response
        return (response is not None and not response.tts_failed) or self.output.busy

    # --- starting ------------------------------------------------------------------------

    def respond(
        self, make_turn: MakeTurn | None, *, say: str | None = None, timings: Timings | None = None
    ) -> None:
        """Run a turn (or only say ``say``) as the next response."""
        if not self.closed:
            self._spawn(self._run_response(make_turn, say, timings or Timings()))

    async def _run_response(
        self, make_turn: MakeTurn | None, say: str | None, timings: Timings
    ) -> None:
        response = None
        try:
            async with self._start_lock:
                response = await self._begin(make_turn, timings)
            if response is None:
                return
            if say:
                response.say(say, stored=False)
            await response.run()
            await self._wait_drained(response)
            await self.events.emit(Done(timings.breakdown_ms()))
            log.info("voice turn latency %s", timings.breakdown_ms())
        except Exception:
            log.exception("a voice response of session %s failed", self.session_id)
            await self.events.emit(Error("internal_error", "the voice response failed"))
        finally:
            if response is not None and self.response is response:
                self.response = None

    async def _begin(self, make_turn: MakeTurn | None, timings: Timings) -> Response | None:
        """With the start lock held: stop the current response, start the turn and
        register the new response (None if the turn was refused)."""
        if self.response is not None:
            await self.response.superseded()
        await self.interrupt()
        turn = None
        if make_turn is not None:
            turn = await self._start_turn(make_turn)
            if turn is None:
                return None
        if self.closed:  # the session closed while this response was starting
            if turn is not None:
                await turn.cancel("")
            return None
        return self._register(turn, timings)

    def _register(self, turn: TurnStream | None, timings: Timings) -> Response:
        """Make the response current (no await here: a started turn always has an owner)."""
        response = Response(
            turn=turn,
            tts=self.tts,
            output=self.output,
            generation=self.output.new_generation(),
            output_rate=self.output_rate,
            emit=self.events.emit,
            clock=self.clock,
            on_event=self._on_turn_event,
            timings=timings,
        )
        response.task = asyncio.current_task()  # type: ignore[assignment]
        self.response = response
        return response

    async def _start_turn(self, make_turn: MakeTurn) -> TurnStream | None:
        """Start the turn; while another channel holds the lock, tell the client once
        and retry whenever the lock frees, until the lock's TTL has passed."""
        deadline = self.clock.monotonic() + self.turns.lock_ttl_s
        told = False
        while True:
            turn = make_turn()
            try:
                await turn.start()
                return turn
            except TurnRejected as exc:
                if exc.code != "session_busy":
                    await self.events.emit(Error(exc.code, exc.message))
                    return None
                if not told:
                    told = True
                    await self.events.emit(Error(exc.code, exc.message))
            if not await self._wait_for_lock(deadline):
                log.warning(
                    "session %s stayed busy; a voice turn was dropped", self.turns.session_id
                )
                return None

    async def _wait_for_lock(self, deadline: float) -> bool:
        while not await self.turns.lock_free():
            if self.clock.monotonic() >= deadline:
                return False
            await self.clock.sleep(LOCK_POLL_SECS)
        return True

    async def _wait_drained(self, response: Response) -> None:
        while self.response is response and not self.output.drained(self.clock.monotonic()):
            await self.clock.sleep(FRAME_SECS)

    # --- approvals -----------------------------------------------------------------------

    async def _on_turn_event(self, event: Event) -> None:
        if isinstance(event, ApprovalRequested):
            self.awaiting_answer(event.tool_call_id)
        elif isinstance(event, ApprovalResolved) and event.tool_call_id == self.pending_approval:
            self.answered()

    def awaiting_answer(self, tool_call_id: str) -> None:
        self.pending_approval = tool_call_id
        self._set_stt_mode("yes_no")

    def answered(self) -> None:
        self.pending_approval = None
        self._set_stt_mode("default")

    def spoken_answer(self, text: str) -> tuple[str, bool] | None:
        """What a final transcript decides: ``(tool_call_id, approved)`` when an approval
        is pending and the words are a yes or a no, else None (an ordinary turn)."""
        tool_call_id = self.pending_approval
        if tool_call_id is None:
            return None
        decision = yes_or_no(text)
        return None if decision is None else (tool_call_id, decision)

    # --- stopping ------------------------------------------------------------------------

    async def interrupt(self, *, notify: bool = True) -> None:
        """Stop the current response now (barge-in, ``interrupt``, a newer turn).

        Returns once its turn has stopped: the heard text is stored and the lock
        is free. A second caller meanwhile waits for the same stop."""
        response = self.response
        if response is not None:
            self.response = None
            heard = self.output.clear(self.clock.monotonic())
            own = response.task is asyncio.current_task()
            self._stopping = asyncio.create_task(self._stop(response, heard, own))
            if notify:
                await self.events.emit(Interrupted())
        if self._stopping is not None and not self._stopping.done():
            await asyncio.shield(self._stopping)

    async def _stop(self, response: Response, heard: str, own: bool) -> None:
        try:
            if not own:
                await response.cancel(heard)
            elif response.turn is not None:  # called from the response's own task
                await response.turn.cancel(response.spoken.heard_of_last(heard))
        except Exception:  # the session goes on; the stored text may be untruncated
            log.exception("stopping a response of session %s failed", self.session_id)
            return
        kept = self.turns.kept_message(response.turn) if response.turn is not None else None
        if kept is not None:
            await self.events.emit(kept)  # what was kept of the message (what was heard)

    def first_audio(self, now: float) -> None:
        response = self.response
        if response is not None and response.timings.first_audio is None:
            response.timings.first_audio = now
