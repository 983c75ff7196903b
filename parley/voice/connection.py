"""``VoiceConnection``: the async voice loop of one connection (browser or phone).

Audio in → resample to 16 kHz → 20 ms frames → VAD → ``TurnTaking`` (pure) → STT.
A final transcript becomes a user turn of the same ``Brain`` chat uses; its events
are spoken by a ``Response`` into the ``Playout`` (pure), and one pump task sends
due frames to the transport at real-time pace. User speech while the agent talks
(``BargeIn``) clears the playout, tells the client ``interrupted`` and stores the
assistant message truncated to what was heard.

Busy policy: if a chat turn holds the session's lock when an utterance ends, the
client gets ``error{session_busy}`` and the utterance is retried as soon as the lock
frees (within the lock's TTL), so nothing said is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from parley.audio.pcm import FrameSplitter, SampleAligner
from parley.audio.resample import Resampler
from parley.brain.core import Brain, UserInput
from parley.brain.errors import TurnRejected
from parley.brain.turn_stream import TurnStream
from parley.clock import Clock
from parley.config import AgentSpec
from parley.engines.base import EngineError, EngineSet
from parley.events import (
    ApprovalRequested,
    ApprovalResolved,
    Done,
    Error,
    Event,
    Interrupted,
    Transcript,
    Vad,
)
from parley.voice.barge_in import BargeIn
from parley.voice.playout import Playout
from parley.voice.response import APOLOGY, Response, Timings
from parley.voice.turn_taking import (
    Mode,
    SpeechStarted,
    SpeechStopped,
    TurnState,
    TurnTaking,
    TurnTakingConfig,
    UtteranceDiscarded,
    UtteranceEnded,
)

log = logging.getLogger(__name__)

FRAME_SECS = 0.02
FRAME_BYTES_16K = 640
PREROLL_FRAMES = 15  # 300 ms of audio before the VAD confirmed speech
YES = {"yes", "yeah", "yep", "sure", "okay", "ok", "correct", "please", "go", "ahead", "do", "it"}
NO = {"no", "nope", "cancel", "don't", "dont", "stop", "not"}


class VoiceTransport(Protocol):
    async def send_json(self, data: dict[str, Any]) -> None: ...

    async def send_audio(self, pcm: bytes) -> None: ...


@dataclass(frozen=True)
class VoiceOptions:
    input_rate: int = 16000
    output_rate: int = 16000
    mode: str = "hands_free"
    transcripts: bool = True
    channel: str = "voice"
    lead_ms: float = 200.0


def yes_or_no(text: str) -> bool | None:
    words = set(text.lower().replace(",", " ").split())
    if words & NO:
        return False
    if words & YES:
        return True
    return None


class VoiceConnection:
    def __init__(
        self,
        *,
        brain: Brain,
        session_id: str,
        agent: AgentSpec,
        engines: EngineSet,
        transport: VoiceTransport,
        options: VoiceOptions,
        clock: Clock,
    ) -> None:
        self.brain = brain
        self.session_id = session_id
        self.agent = agent
        self.engines = engines
        self.transport = transport
        self.options = options
        self.clock = clock
        self.turn_taking = TurnTaking(TurnTakingConfig.from_voice_spec(agent.voice), options.mode)
        self.vad = engines.vad.open_stream()
        self.stt = engines.stt.open_stream()
        self.aligner = SampleAligner()
        self.resampler = Resampler(options.input_rate, 16000)
        self.splitter = FrameSplitter(FRAME_BYTES_16K)
        self.playout = Playout(options.output_rate, 20, options.lead_ms)
        self.audio_t = 0.0  # seconds of input audio processed (the turn-taking clock)
        self.preroll: deque[bytes] = deque(maxlen=PREROLL_FRAMES)
        self.in_utterance = False
        self.response: Response | None = None
        self.pending_approval: str | None = None
        self.agent_speaking = False
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timings = Timings()

    # --- life cycle ------------------------------------------------------------------

    async def start(self, *, greet: str | None = None, initial_turn: bool = False) -> None:
        self._pump = asyncio.create_task(self._pump_audio())
        if initial_turn:
            self._respond(lambda: self.brain.initial_turn(self.session_id, self.options.channel))
        elif greet:
            self._respond(None, say=greet)

    async def close(self) -> None:
        if self.response is not None:
            await self._interrupt(notify=False)
        for task in list(self._tasks):
            task.cancel()
        if self._pump is not None:
            self._pump.cancel()
        for task in [*self._tasks, *([self._pump] if self._pump else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.stt.close()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, event: Event) -> None:
        await self.transport.send_json(event.to_wire())

    # --- audio in ----------------------------------------------------------------------

    async def feed_audio(self, data: bytes) -> None:
        pcm = self.resampler.process(self.aligner.feed(data))
        for frame in self.splitter.push(pcm):
            await self._on_frame(frame)

    async def _on_frame(self, frame: bytes) -> None:
        prob = self.vad.process(frame)
        now = self.audio_t
        self.audio_t += FRAME_SECS
        events = self.turn_taking.on_frame(prob, now, FRAME_SECS)
        if self.turn_taking.state is not TurnState.QUIET or self.in_utterance:
            if not self.in_utterance:
                self.in_utterance = True
                for early in self.preroll:
                    await self._stt_push(early)
                self.preroll.clear()
            await self._stt_push(frame)
        else:
            self.preroll.append(frame)
        for ev in events:
            await self._on_turn_taking(ev)

    async def _stt_push(self, frame: bytes) -> None:
        try:
            partial = await self.stt.push(frame)
        except EngineError as exc:
            log.warning("stt failed: %s", exc)
            return
        if partial:
            if self.options.transcripts:
                await self._send(Transcript(partial))
            for ev in self.turn_taking.on_partial(partial, self.audio_t):
                await self._on_turn_taking(ev)

    async def _on_turn_taking(self, ev: object) -> None:
        if isinstance(ev, SpeechStarted):
            await self._send(Vad("speech_started"))
        elif isinstance(ev, SpeechStopped):
            await self._send(Vad("speech_stopped"))
        elif isinstance(ev, BargeIn):
            await self._interrupt()
        elif isinstance(ev, UtteranceDiscarded):
            self.in_utterance = False
            self.stt.cancel()
        elif isinstance(ev, UtteranceEnded):
            self.in_utterance = False
            self._spawn(self._finish_utterance(self.clock.monotonic()))

    async def _finish_utterance(self, vad_end: float) -> None:
        try:
            text = (await self.stt.finish()).strip()
        except EngineError as exc:
            await self._send(Error(exc.code, f"speech recognition failed: {exc}"))
            self._respond(None, say=APOLOGY)
            return
        timings = Timings(vad_end=vad_end, stt_final=self.clock.monotonic())
        if self.options.transcripts or text:
            await self._send(Transcript(text, final=True))
        if not text:
            return
        if self.pending_approval is not None:
            decision = yes_or_no(text)
            if decision is not None:
                self.decide(self.pending_approval, decision, "voice", timings)
                return
        self.user_turn(UserInput(text, self.options.channel), timings)

    # --- user actions ------------------------------------------------------------------

    def user_turn(self, user: UserInput, timings: Timings | None = None) -> None:
        self._respond(lambda: self.brain.user_turn(self.session_id, user), timings=timings)

    def decide(
        self, tool_call_id: str, approved: bool, by: str, timings: Timings | None = None
    ) -> None:
        def make() -> TurnStream:
            return self.brain.decide(
                self.session_id, tool_call_id, approved,
                decided_by=by, channel=self.options.channel,
            )

        self._respond(make, timings=timings)

    async def ptt(self, down: bool) -> None:
        now = self.audio_t
        if self.turn_taking.mode is not Mode.PUSH_TO_TALK:
            for ev in self.turn_taking.set_mode(Mode.PUSH_TO_TALK, now):
                await self._on_turn_taking(ev)
        events = self.turn_taking.ptt_down(now) if down else self.turn_taking.ptt_up(now)
        for ev in events:
            await self._on_turn_taking(ev)

    def client_played(self, ms: float) -> None:
        with contextlib.suppress(ValueError):
            self.playout.client_played(ms, self.clock.monotonic())

    # --- responses ---------------------------------------------------------------------

    def _respond(
        self,
        make_turn: Callable[[], TurnStream] | None,
        *,
        say: str | None = None,
        timings: Timings | None = None,
    ) -> None:
        self._spawn(self._run_response(make_turn, say, timings or Timings()))

    async def _run_response(
        self, make_turn: Callable[[], TurnStream] | None, say: str | None, timings: Timings
    ) -> None:
        if self.response is not None:
            await self._interrupt()
        turn = await self._start_turn(make_turn) if make_turn is not None else None
        if make_turn is not None and turn is None:
            return
        generation = self.playout.new_generation()
        response = Response(
            turn=turn, tts=self.engines.tts, playout=self.playout, generation=generation,
            output_rate=self.options.output_rate, send_json=self.transport.send_json,
            clock=self.clock, on_event=self._on_turn_event, timings=timings,
        )
        self.response = response
        self._timings = timings
        response.task = asyncio.current_task()  # type: ignore[assignment]
        waker = asyncio.create_task(self._forward_wakeups(response))
        try:
            if say:
                response.say(say, stored=False)
            await response.run()
            await self._wait_drained(response)
            await self._send(Done(timings.breakdown_ms()))
            log.info("voice turn latency %s", timings.breakdown_ms())
        finally:
            waker.cancel()
            if self.response is response:
                self.response = None

    async def _start_turn(self, make_turn: Callable[[], TurnStream]) -> TurnStream | None:
        for attempt in range(2):
            turn = make_turn()
            try:
                await turn.start()
                return turn
            except TurnRejected as exc:
                await self._send(Error(exc.code, exc.message))
                if exc.code != "session_busy" or attempt:
                    return None
                if not await self._wait_for_lock():
                    return None
        return None

    async def _wait_for_lock(self) -> bool:
        key = f"turn:{self.session_id}"
        deadline = self.clock.monotonic() + self.brain.lock_ttl_s
        while self.clock.monotonic() < deadline:
            if await self.brain.coordinator.lock_owner(key) is None:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _on_turn_event(self, event: Event) -> None:
        if isinstance(event, ApprovalRequested):
            self.pending_approval = event.tool_call_id
            self.stt.set_mode("yes_no")
        elif isinstance(event, ApprovalResolved) and event.tool_call_id == self.pending_approval:
            self.pending_approval = None
            self.stt.set_mode("default")

    async def _forward_wakeups(self, response: Response) -> None:
        while True:
            await response.audio_added.wait()
            response.audio_added.clear()
            self._wake.set()

    async def _wait_drained(self, response: Response) -> None:
        while self.response is response and not self.playout.drained(self.clock.monotonic()):
            self._wake.set()
            await asyncio.sleep(FRAME_SECS)

    async def _interrupt(self, *, notify: bool = True) -> None:
        response = self.response
        if response is None:
            return
        self.response = None
        heard = self.playout.clear(self.clock.monotonic())
        if notify:
            await self._send(Interrupted())
        self._set_speaking(False)
        if response.task is not asyncio.current_task():
            await response.cancel(heard)
        elif response.turn is not None:
            await response.turn.cancel(response.spoken.heard_of_last(heard))

    # --- audio out ---------------------------------------------------------------------

    def _set_speaking(self, speaking: bool) -> None:
        if speaking != self.agent_speaking:
            self.agent_speaking = speaking
            self.turn_taking.set_agent_speaking(speaking, self.audio_t)

    async def _pump_audio(self) -> None:
        """Send due frames at real-time pace; one task per connection."""
        while True:
            now = self.clock.monotonic()
            frames = self.playout.due_frames(now)
            if frames:
                if self._timings.first_audio is None:
                    self._timings.first_audio = now
                self._set_speaking(True)
                for frame in frames:
                    await self.transport.send_audio(frame)
            elif self.agent_speaking and self.playout.drained(now):
                self._set_speaking(False)
            due = self.playout.next_due(now)
            if due is None:
                self._wake.clear()
                timeout = FRAME_SECS if self.agent_speaking else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            else:
                await asyncio.sleep(max(0.0, due - now))
