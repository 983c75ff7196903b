"""``VoiceConnection``: the async voice loop of one connection (browser or phone).

Audio in → resample to 16 kHz → 20 ms frames → VAD → ``TurnTaking`` (pure) → STT
(``SttFeed``: recogniser calls in order, off the audio path). A final transcript
becomes a user turn of the same ``Brain`` chat uses; its events are spoken by a
``Response`` into the ``Playout`` (pure), and one ``AudioPump`` task sends due frames
to the transport at real-time pace. User speech while the agent talks (``BargeIn``)
clears the playout, tells the client ``interrupted`` and stores the assistant
message truncated to what was heard.

Time. ``TurnTaking`` runs on the input audio's own timeline (``audio_t``: seconds of
audio received); pacing, latency and "what was heard" use ``clock.monotonic()``;
every wait goes through ``clock.sleep`` so tests drive it in virtual time.

Responses. One response is registered at a time (``self.response``). Starting one
is serialised (``_start_lock``): it first interrupts the registered response and
waits until that one's turn has stopped and released the session's turn lock, then
starts its own turn. So two utterances ending close together run one after the
other (the later interrupts the earlier), and a ``session_busy`` refusal always
means another channel holds the lock.

Busy policy: if a chat turn holds the session's lock when an utterance ends, the
client gets ``error{session_busy}`` once and the utterance is retried as soon as
the lock frees (polled until the lock's TTL has passed), so nothing said is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
    AssistantMessage,
    Done,
    Error,
    Event,
    Interrupted,
    Transcript,
    Vad,
)
from parley.voice.barge_in import BargeIn
from parley.voice.pump import AudioPump
from parley.voice.response import APOLOGY, Response, Timings
from parley.voice.stt_feed import SttFeed
from parley.voice.turn_taking import (
    Mode,
    SpeechStarted,
    SpeechStopped,
    TurnTaking,
    TurnTakingConfig,
    TurnTakingError,
    TurnTakingEvent,
    UtteranceDiscarded,
    UtteranceEnded,
)

log = logging.getLogger(__name__)

FRAME_SECS = 0.02
FRAME_BYTES_16K = 640
PREROLL_EXTRA_SECS = 0.3  # audio kept from before the speech onset the VAD found
LOCK_POLL_SECS = 0.05
YES = {"yes", "yeah", "yep", "sure", "okay", "ok", "correct", "please", "go", "ahead", "do", "it"}
NO = {"no", "nope", "cancel", "don't", "dont", "stop", "not"}

__all__ = ["FRAME_SECS", "VoiceConnection", "VoiceOptions", "VoiceTransport", "yes_or_no"]


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
    send_batch_ms: float = 60.0  # outbound audio per message while a response plays

    def __post_init__(self) -> None:
        if not 20.0 <= self.send_batch_ms <= self.lead_ms:
            raise ValueError(
                f"send_batch_ms must be between 20 and lead_ms ({self.lead_ms}), "
                f"got {self.send_batch_ms}"
            )


def yes_or_no(text: str) -> bool | None:
    """A spoken answer to an approval prompt: True, False, or None if neither."""
    words = set(text.lower().replace(",", " ").replace(".", " ").split())
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
        config = TurnTakingConfig.from_voice_spec(agent.voice)
        self.turn_taking = TurnTaking(config, options.mode)
        self.vad = engines.vad.open_stream()
        # a VAD that batches windows across connections offers an async entry point
        self._vad_async = getattr(self.vad, "process_async", None)
        self.stt = engines.stt.open_stream()
        self.stt_feed = SttFeed(self.stt, self._on_partial)
        self.aligner = SampleAligner()
        self.resampler = Resampler(options.input_rate, 16000)
        self.splitter = FrameSplitter(FRAME_BYTES_16K)
        self.pump = AudioPump(
            options.output_rate,
            options.lead_ms,
            transport,
            clock,
            on_speaking=self._set_speaking,
            on_first_audio=self._first_audio,
            batch_ms=options.send_batch_ms,
        )
        self.playout = self.pump.playout
        self.audio_t = 0.0  # seconds of input audio processed (the turn-taking clock)
        preroll = math.ceil((config.start_secs + PREROLL_EXTRA_SECS) / FRAME_SECS)
        self.preroll: deque[bytes] = deque(maxlen=preroll)
        self.in_utterance = False
        self.response: Response | None = None
        self.pending_approval: str | None = None
        self._start_lock = asyncio.Lock()
        self._stopping: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    @property
    def agent_speaking(self) -> bool:
        return self.pump.speaking

    # --- life cycle ------------------------------------------------------------------

    async def start(self, *, greet: str | None = None, initial_turn: bool = False) -> None:
        """Start the output pump; speak a greeting or run the opening turn."""
        self.pump.start()
        pending = await self.brain.store.list_approvals(self.session_id, "pending")
        if pending:  # asked before this connection (e.g. in chat): answer it by voice
            self._awaiting_answer(pending[-1].tool_call_id)
        if initial_turn:
            self._respond(lambda: self.brain.initial_turn(self.session_id, self.options.channel))
        elif greet:
            self._respond(None, say=greet)

    async def close(self) -> None:
        """Stop everything; a running response stores what was heard and frees the lock."""
        self._closed = True
        await self.interrupt(notify=False)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.interrupt(notify=False)  # a response that registered meanwhile
        await self.pump.close()
        await self.stt_feed.close()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("voice task of session %s failed", self.session_id, exc_info=exc)

    async def _send(self, event: Event) -> None:
        await self.transport.send_json(event.to_wire())

    # --- audio in ----------------------------------------------------------------------

    async def feed_audio(self, data: bytes) -> None:
        """PCM16 LE mono at the input rate, any length (odd lengths too). Whole 16 kHz
        frames pass the aligner, resampler and splitter without a copy."""
        pcm = self.resampler.process(self.aligner.feed(data))
        for frame in self.splitter.push(pcm):
            await self._on_frame(frame)

    async def _on_frame(self, frame: bytes) -> None:
        score = self._vad_async
        prob = await score(frame) if score is not None else self.vad.process(frame)
        now = self.audio_t
        self.audio_t += FRAME_SECS
        events = self.turn_taking.on_frame(prob, now, FRAME_SECS)
        if self.in_utterance:
            self.stt_feed.push(frame)
        else:
            self.preroll.append(frame)
        await self._handle_turn_taking(events)

    async def _on_partial(self, text: str) -> None:
        if self.options.transcripts:
            await self._send(Transcript(text))
        await self._handle_turn_taking(self.turn_taking.on_partial(text, self.audio_t))

    async def _handle_turn_taking(self, events: list[TurnTakingEvent]) -> None:
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._open_utterance()
                await self._send(Vad("speech_started"))
            elif isinstance(ev, SpeechStopped):
                await self._send(Vad("speech_stopped"))
            elif isinstance(ev, BargeIn):
                await self.interrupt()
            elif isinstance(ev, UtteranceDiscarded):
                self.in_utterance = False
                self.stt_feed.cancel()
            elif isinstance(ev, UtteranceEnded):
                self.in_utterance = False
                final = self.stt_feed.finish()  # queued now, before any later audio
                self._spawn(self._finish_utterance(final, self.clock.monotonic()))

    def _open_utterance(self) -> None:
        """Speech confirmed: the recogniser gets the audio from just before its onset
        (hands-free); push-to-talk starts exactly at key-down."""
        self.in_utterance = True
        if self.turn_taking.mode is Mode.HANDS_FREE:
            for frame in self.preroll:
                self.stt_feed.push(frame)
        self.preroll.clear()

    async def _finish_utterance(self, final: asyncio.Future[str], vad_end: float) -> None:
        try:
            text = (await final).strip()
        except EngineError as exc:
            log.warning("speech recognition failed: %s", exc)
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
                tool_call_id = self.pending_approval
                self.pending_approval = None  # answered, whoever wins the claim
                self.stt_feed.set_mode("default")
                self.decide(tool_call_id, decision, "voice", timings)
                return
        self.user_turn(UserInput(text, self.options.channel), timings)

    # --- user actions ------------------------------------------------------------------

    def user_turn(self, user: UserInput, timings: Timings | None = None) -> None:
        """Run a user turn (speech, typed text or a UI action) and speak the answer."""
        self._respond(lambda: self.brain.user_turn(self.session_id, user), timings=timings)

    def decide(
        self, tool_call_id: str, approved: bool, by: str, timings: Timings | None = None
    ) -> None:
        """Decide a pending approval (by voice or an ``approval`` message)."""

        def make() -> TurnStream:
            return self.brain.decide(
                self.session_id,
                tool_call_id,
                approved,
                decided_by=by,
                channel=self.options.channel,
            )

        self._respond(make, timings=timings)

    async def ptt(self, down: bool) -> None:
        """Push-to-talk key; the first one switches the connection to push-to-talk.
        Raises ``ValueError`` for a key-up without a key-down."""
        now = self.audio_t
        if self.turn_taking.mode is not Mode.PUSH_TO_TALK:
            await self._handle_turn_taking(self.turn_taking.set_mode(Mode.PUSH_TO_TALK, now))
        try:
            events = self.turn_taking.ptt_down(now) if down else self.turn_taking.ptt_up(now)
        except TurnTakingError as exc:
            raise ValueError(str(exc)) from None
        await self._handle_turn_taking(events)

    def client_played(self, ms: float) -> None:
        """The client's playback position in the current response (optional)."""
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
        if not self._closed:
            self._spawn(self._run_response(make_turn, say, timings or Timings()))

    async def _run_response(
        self, make_turn: Callable[[], TurnStream] | None, say: str | None, timings: Timings
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
            await self._send(Done(timings.breakdown_ms()))
            log.info("voice turn latency %s", timings.breakdown_ms())
        except Exception:
            log.exception("a voice response of session %s failed", self.session_id)
            await self._send(Error("internal_error", "the voice response failed"))
        finally:
            if response is not None and self.response is response:
                self.response = None

    async def _begin(
        self, make_turn: Callable[[], TurnStream] | None, timings: Timings
    ) -> Response | None:
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
        if self._closed:  # the connection closed while this response was starting
            if turn is not None:
                await turn.cancel("")
            return None
        return self._register(turn, timings)

    def _register(self, turn: TurnStream | None, timings: Timings) -> Response:
        """Make the response current (no await here: a started turn always has an owner)."""
        response = Response(
            turn=turn,
            tts=self.engines.tts,
            playout=self.playout,
            generation=self.playout.new_generation(),
            output_rate=self.options.output_rate,
            send_json=self.transport.send_json,
            clock=self.clock,
            on_event=self._on_turn_event,
            timings=timings,
            on_audio=self.pump.wake,
        )
        response.task = asyncio.current_task()  # type: ignore[assignment]
        self.response = response
        return response

    async def _start_turn(self, make_turn: Callable[[], TurnStream]) -> TurnStream | None:
        """Start the turn; while another channel holds the lock, tell the client once
        and retry whenever the lock frees, until the lock's TTL has passed."""
        deadline = self.clock.monotonic() + self.brain.lock_ttl_s
        told = False
        while True:
            turn = make_turn()
            try:
                await turn.start()
                return turn
            except TurnRejected as exc:
                if exc.code != "session_busy":
                    await self._send(Error(exc.code, exc.message))
                    return None
                if not told:
                    told = True
                    await self._send(Error(exc.code, exc.message))
            if not await self._wait_for_lock(deadline):
                log.warning("session %s stayed busy; a voice turn was dropped", self.session_id)
                return None

    async def _wait_for_lock(self, deadline: float) -> bool:
        key = f"turn:{self.session_id}"
        while await self.brain.coordinator.lock_owner(key) is not None:
            if self.clock.monotonic() >= deadline:
                return False
            await self.clock.sleep(LOCK_POLL_SECS)
        return True

    async def _on_turn_event(self, event: Event) -> None:
        if isinstance(event, ApprovalRequested):
            self._awaiting_answer(event.tool_call_id)
        elif isinstance(event, ApprovalResolved) and event.tool_call_id == self.pending_approval:
            self.pending_approval = None
            self.stt_feed.set_mode("default")

    def _awaiting_answer(self, tool_call_id: str) -> None:
        self.pending_approval = tool_call_id
        self.stt_feed.set_mode("yes_no")

    async def _wait_drained(self, response: Response) -> None:
        while self.response is response and not self.playout.drained(self.clock.monotonic()):
            await self.clock.sleep(FRAME_SECS)

    async def interrupt(self, *, notify: bool = True) -> None:
        """Stop the current response now (barge-in, ``interrupt``, a newer turn).

        Returns once its turn has stopped: the heard text is stored and the lock
        is free. A second caller meanwhile waits for the same stop."""
        response = self.response
        if response is not None:
            self.response = None
            heard = self.playout.clear(self.clock.monotonic())
            self._set_speaking(False)
            own = response.task is asyncio.current_task()
            self._stopping = asyncio.create_task(self._stop(response, heard, own))
            if notify:
                await self._send(Interrupted())
        if self._stopping is not None and not self._stopping.done():
            await asyncio.shield(self._stopping)

    async def _stop(self, response: Response, heard: str, own: bool) -> None:
        try:
            if not own:
                await response.cancel(heard)
            elif response.turn is not None:  # called from the response's own task
                await response.turn.cancel(response.spoken.heard_of_last(heard))
        except Exception:  # the connection goes on; the stored text may be untruncated
            log.exception("stopping a response of session %s failed", self.session_id)
            return
        state = response.turn.state if response.turn is not None else None
        if state is not None and state.truncated and state.last_message_id is not None:
            # tell the client what was kept of the message (what the user heard)
            await self._send(AssistantMessage(state.last_message_id, state.last_message_text, True))

    # --- audio out ---------------------------------------------------------------------

    def _set_speaking(self, speaking: bool) -> None:
        if speaking != self.pump.speaking:
            self.pump.speaking = speaking
            self.turn_taking.set_agent_speaking(speaking, self.audio_t)

    def _first_audio(self, now: float) -> None:
        response = self.response
        if response is not None and response.timings.first_audio is None:
            response.timings.first_audio = now
