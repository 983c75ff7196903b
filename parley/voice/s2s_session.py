"""``S2SVoiceSession``: a voice attachment whose brain is a speech-to-speech model.

For an agent with ``brain: realtime`` the transport gets this instead of the cascaded
``VoiceSession`` (it is one, with the same surface): the caller's audio goes up to the
model (``parley/s2s``), the model's audio comes down through the same ``AudioOutput``
(pacing, ``played`` acks, what was heard), and what it says and hears is written to the
one history through ``RealtimeTurns``.

* Input: PCM at the client's rate → 16 kHz → ``send_audio`` (all of it: the provider's
  VAD takes the turns, and Parley's is not run — no ``VoiceInput``, so no VAD or STT
  stream, end-of-turn model or draft; in push-to-talk mode only while the key is down,
  then a second of silence so the provider's VAD ends the turn). Typed text and card
  clicks are stored as the user's message and sent up as text.
* Output: ``AudioOut`` (24 kHz) → the output rate → ``AudioOutput.enqueue``; transcript
  deltas go to the client as ``assistant_text``/``assistant_delta`` in step with the
  audio (``TextInStep``), ``assistant_text{start}`` opens an answer and
  ``assistant_text{end}`` + ``done`` close it.
* Barge-in: the provider's ``Interrupted`` clears the output at once (``interrupted``
  to the client); the answer is stored as heard, marked interrupted, and OpenAI gets
  ``conversation.item.truncate`` with the heard ``audio_end_ms``.
* ``vad``: from the provider's ``SpeechStarted``/``SpeechStopped`` (OpenAI); for a
  provider without them (Gemini) derived from its barge-in signal and the caller's
  transcription (first piece: started; final: stopped).
* Transcripts: the caller's final one is a ``transcript_final`` and the user message
  (or the spoken yes/no of a pending approval); the model's final one the assistant
  message.
* Tools: a ``ToolCall`` is stored with the text before it and goes through the brain's
  gate; a call that needs approval is asked aloud (the session's TTS) and on the card,
  and decided by voice or click — or over HTTP on any worker (``settle_decision``, fed
  by ``channels/live_decision.py``); the result or the denial goes back with
  ``send_tool_result``.
* Errors: a retryable ``UpstreamError`` is told to the caller (an ``error`` event and a
  spoken sentence); a final one ends the session with ``ERROR`` via ``on_fatal``.

Every write is a short turn under the session's lock, run in order by one writer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

from parley.audio.pcm import SampleAligner
from parley.audio.resample import stream_resampler
from parley.brain.core import UserInput
from parley.brain.history import INITIAL_TURN_PROMPT
from parley.brain.realtime_turns import RealtimeTurns
from parley.clock import Clock
from parley.config import AgentSpec
from parley.engines.base import EngineSet
from parley.events import (
    AssistantDelta,
    AssistantText,
    Done,
    Error,
    Interrupted,
    Transcript,
    Vad,
)
from parley.s2s import base as s2s
from parley.voice.io import AudioOutput, EventSink, VoiceOptions
from parley.voice.response import Timings
from parley.voice.s2s_answer import ModelAnswer
from parley.voice.s2s_writer import DRAIN_POLL_S, Echo, TurnWriter
from parley.voice.session import VoiceSession
from parley.voice.turns import VoiceTurns

log = logging.getLogger(__name__)

__all__ = ["S2SVoiceSession"]

UPSTREAM_TROUBLE = "Sorry, I lost my connection for a moment. Please say that again."
UPSTREAM_LOST = "Sorry, I can't continue this call right now. Please try again later."
PTT_TAIL_S = 1.0  # silence sent after a push-to-talk key-up, for the provider's VAD

ConfigSource = Callable[[], Awaitable[s2s.S2SConfig]]
OnFatal = Callable[[str], Awaitable[None]]


class S2SVoiceSession(VoiceSession):
    """A voice attachment answered by a speech-to-speech upstream (module docstring)."""

    drafts_allowed = False  # the upstream model answers; no cascaded draft
    cascaded_input = False  # the upstream hears the caller: no VAD, STT, end-of-turn model

    def __init__(
        self,
        *,
        turns: VoiceTurns,
        realtime: RealtimeTurns,
        upstream: s2s.SpeechToSpeech,
        config: ConfigSource,
        agent: AgentSpec,
        engines: EngineSet,
        events: EventSink,
        audio: AudioOutput,
        options: VoiceOptions,
        clock: Clock,
        on_fatal: OnFatal | None = None,
    ) -> None:
        super().__init__(
            turns=turns,
            agent=agent,
            engines=engines,
            events=events,
            audio=audio,
            options=options,
            clock=clock,
        )
        self.upstream = upstream
        self.realtime = realtime
        self._config = config
        self._on_fatal = on_fatal
        self._up = stream_resampler(options.input_rate, s2s.INPUT_RATE)
        self._aligner = SampleAligner()  # holds a trailing odd byte of input
        self._down = stream_resampler(s2s.OUTPUT_RATE, options.output_rate)
        self._answer = ModelAnswer()
        self._last: ModelAnswer | None = None  # the answer before, while its audio plays
        self._heard_partial: list[str] = []
        self.writer = TurnWriter(self, upstream)
        self._reader: asyncio.Task[None] | None = None
        self._ptt_down = False
        self._connected = False
        self._caller_speaking = False  # as the provider's VAD last told (``vad`` events)

    # --- life cycle ------------------------------------------------------------------

    async def start(self, *, greet: str | None = None, initial_turn: bool = False) -> None:
        self.audio.start(self)
        self.writer.start()
        await self.upstream.connect(await self._config())
        self._connected = True
        self._reader = asyncio.create_task(self._read_upstream())
        pending = await self.turns.pending_approval()
        if pending is not None:
            self.responder.awaiting_answer(pending)
        if initial_turn:
            await self.upstream.send_text(INITIAL_TURN_PROMPT)
        elif greet:
            self.responder.respond(None, say=greet)

    async def close(self) -> None:
        """Store what the caller heard of an answer in progress, then stop."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        answer = self._answer
        if answer.started and not answer.final_seen:
            self._cut_answer(self.clock.monotonic(), notify=False)
            self._store_answer(answer)
        await self.writer.close()
        await self.upstream.close()
        await super().close()

    # --- what the transport calls --------------------------------------------------------

    async def feed_audio(self, data: bytes) -> None:  # type: ignore[override]
        data = self._aligner.feed(data)
        if not data or not self._connected:
            return
        if self.options.mode == "push_to_talk" and not self._ptt_down:
            return
        pcm = self._up.process(data)
        if pcm:
            await self.upstream.send_audio(pcm)

    async def ptt(self, down: bool) -> None:
        if not down and not self._ptt_down:
            raise ValueError("ptt key-up without a key-down")
        self._ptt_down = down
        if down and self.audio.busy:  # the key cuts the agent, as in the cascaded loop
            self._cut_answer(self.clock.monotonic(), notify=True)
        if not down and self._connected:  # silence after the key-up ends the provider's turn
            await self.upstream.send_audio(bytes(2 * int(s2s.INPUT_RATE * PTT_TAIL_S)))

    def user_turn(self, user: UserInput, timings: Timings | None = None) -> None:
        text = user.text.strip()
        if not text:
            return
        self.writer.write(lambda: self.realtime.heard(text))
        self.tasks.spawn(self.upstream.send_text(text))

    def decide(
        self, tool_call_id: str, approved: bool, by: str, timings: Timings | None = None
    ) -> None:
        if self.responder.pending_approval == tool_call_id:
            self.responder.answered()
        self.writer.write(lambda: self.realtime.decide(tool_call_id, approved, by))

    def settle_decision(self, tool_call_id: str, approved: bool, by: str, echo: Echo) -> None:
        """An approval decided (and claimed) on another channel — over HTTP, on any
        worker — settled here as a spoken yes/no would be: the tool runs or the denial
        is recorded, and the result goes up. ``echo`` gets every event of that turn
        (its ``turn_end`` too) for the HTTP answer."""
        if self.responder.pending_approval == tool_call_id:
            self.responder.answered()
        status: Literal["approved", "denied"] = "approved" if approved else "denied"
        self.writer.write(lambda: self.realtime.settle(tool_call_id, status, by), echo=echo)

    async def interrupt(self, *, notify: bool = True) -> None:
        await super().interrupt(notify=notify)  # a spoken prompt or notice
        if self.audio.busy or self._answer.started:
            self._cut_answer(self.clock.monotonic(), notify=notify)

    # --- upstream events -------------------------------------------------------------------

    async def _read_upstream(self) -> None:
        try:
            async for event in self.upstream.events():
                try:
                    await self._on_upstream(event)
                except Exception:
                    log.exception("session %s: handling %r failed", self.session_id, event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: the upstream reader failed", self.session_id)

    async def _on_upstream(self, event: s2s.S2SEvent) -> None:
        answer = self._answer
        match event:
            case s2s.AudioOut(pcm, item_id):
                answer = await self._next_if_cut(answer, item_id)
                await self._play(answer, pcm, item_id)
            case s2s.OutputTranscript(text, final=False, item_id=item_id):
                answer = await self._next_if_cut(answer, item_id)
                if not answer.muted and text:
                    await self._open(answer)
                    answer.add_text(text)
                    await self.events.emit(AssistantText("chunk", text))
                    await self.events.emit(AssistantDelta(text))
            case s2s.OutputTranscript(text, final=True):
                answer.final_seen = True
                rest = answer.final_text(text)
                answer.parts = [rest] if rest else []
                self._store_answer(answer)
            case s2s.SpeechStarted():
                await self._vad(True)
            case s2s.SpeechStopped():
                await self._vad(False)
            case s2s.InputTranscript(text, final=False):
                await self._vad(True, derived=True)
                self._heard_partial.append(text)
                if self.options.transcripts:
                    await self.events.emit(Transcript("".join(self._heard_partial), final=False))
            case s2s.InputTranscript(text, final=True):
                self._heard_partial = []
                await self._vad(True, derived=True)  # a final with no partial before it
                await self._vad(False, derived=True)
                if answer.muted:  # a cut answer ends here if its TurnComplete never came
                    await self._finish(answer)
                await self._caller_said(text.strip())
            case s2s.Interrupted():
                await self._vad(True, derived=True)
                if self.audio.busy or answer.started:
                    self._cut_answer(self.clock.monotonic(), notify=True)
            case s2s.ToolCall(call_id, name, args):
                text = answer.take_unstored()
                call = (call_id, name, dict(args))
                self.writer.write(lambda: self.realtime.said(text, [call]), answer)
            case s2s.ToolCallCancelled(call_ids):
                self.writer.cancelled_calls.update(call_ids)
                if self.responder.pending_approval in call_ids:
                    self.responder.answered()
            case s2s.TurnComplete():
                await self._finish(answer)
            case s2s.UpstreamError(message, retryable, code):
                await self._upstream_error(message, retryable, code)
            case s2s.GoAway(time_left_s):
                log.info("session %s: upstream goAway (%.1fs left)", self.session_id, time_left_s)
            case s2s.ResumptionHandle():
                pass

    async def _vad(self, speaking: bool, *, derived: bool = False) -> None:
        """Tell the client ``vad`` when the caller starts or stops speaking, once per
        change. ``derived``: inferred from a barge-in or the input transcription, for
        a provider that reports no speech start/stop (Gemini); ignored for one that does."""
        if derived and self.upstream.capabilities.speech_events:
            return
        if speaking != self._caller_speaking:
            self._caller_speaking = speaking
            await self.events.emit(Vad("speech_started" if speaking else "speech_stopped"))

    async def _next_if_cut(self, answer: ModelAnswer, item_id: str | None) -> ModelAnswer:
        """Output after a cut belongs to the next answer, unless it is a straggler of
        the cut one (an item it already had): end the cut answer, return the current."""
        if not answer.muted or (item_id is not None and item_id in answer.items):
            return answer
        await self._finish(answer)
        return self._answer

    async def _open(self, answer: ModelAnswer) -> None:
        if not answer.started:
            answer.started = True
            await self.events.emit(AssistantText("start"))

    async def _play(self, answer: ModelAnswer, pcm24k: bytes, item_id: str | None) -> None:
        if answer.muted or not pcm24k:
            return
        await self._open(answer)
        if answer.generation is None:
            self._last = None  # its audio is dropped by the new generation
            answer.generation = self.audio.new_generation()
            self._down.reset()  # nothing held from the answer before
        pcm = self._down.process(pcm24k)
        answer.add_audio(len(pcm24k), item_id)
        if pcm and not self.audio.enqueue(pcm, "", answer.generation, extend=False):
            # a spoken prompt or notice took the output meanwhile: play on after it
            answer.generation = self.audio.new_generation()
            self.audio.enqueue(pcm, "", answer.generation, extend=False)

    def _cut_answer(self, now: float, *, notify: bool) -> None:
        """Barge-in: stop the model's audio at once and keep only what was heard: of
        the answer being given, or of the last one while its audio still plays."""
        answer = self._answer if self._answer.started else self._last
        played = self.audio.played_secs(now)
        self.audio.clear(now)
        if notify:
            self.tasks.spawn(self.events.emit(Interrupted()))
        if answer is None:
            return
        heard = answer.heard_of(played)
        if self.upstream.capabilities.truncate:
            point = answer.truncation(played)
            if point is not None:
                self.tasks.spawn(self.upstream.truncate(*point))
        if answer is self._answer:
            answer.muted = True  # late audio of a cut answer is not played
        self._last = None
        if answer is not self._answer or answer.final_seen:
            # stored whole (or queued to be): cut the stored message once it exists
            self.writer.write(lambda: self.realtime.cut(answer.message_id or "", heard))
            return
        answer.heard = answer.unstored_heard(heard)

    def _store_answer(self, answer: ModelAnswer, *, abandoned: bool = False) -> None:
        """``abandoned``: the answer ended with no final transcript (its socket died):
        what arrived of it is stored, marked interrupted."""
        if answer.heard is not None:
            text, interrupted = answer.heard, True
        else:
            text, interrupted = "".join(answer.parts).strip(), abandoned
        answer.parts = []
        answer.stored = (answer.stored + " " + text).strip()
        if text or interrupted:
            self.writer.write(lambda: self.realtime.said(text, interrupted=interrupted), answer)

    async def _finish(self, answer: ModelAnswer) -> None:
        if answer.generation is not None and not answer.muted:
            tail = self._down.flush()  # what the resampler still holds
            if tail:
                self.audio.enqueue(tail, "", answer.generation, extend=False)
        if answer.parts or (answer.heard is not None and not answer.final_seen):
            self._store_answer(answer, abandoned=not answer.final_seen)
        if answer.started:
            self.tasks.spawn(self._end_when_played(answer))
            self._last = answer
        if self._answer is answer:
            self._answer = ModelAnswer()

    async def _end_when_played(self, answer: ModelAnswer) -> None:
        """``assistant_text{end}`` and ``done`` once the answer's audio has played
        (or was cut), as the cascaded loop sends them."""
        while self.audio.busy and not answer.muted and answer is not self._answer:
            await self.clock.sleep(DRAIN_POLL_S)
        await self.events.emit(AssistantText("end"))
        await self.events.emit(Done({}))

    async def _caller_said(self, text: str) -> None:
        if self.options.transcripts or text:
            await self.events.emit(Transcript(text, final=True))
        if not text:
            return
        answer = self.responder.spoken_answer(text)
        if answer is not None:
            self.decide(*answer, "voice")
            return
        self.writer.write(lambda: self.realtime.heard(text))

    async def _upstream_error(self, message: str, retryable: bool, code: str | None) -> None:
        """The provider's own text stays in the log; the caller hears a sentence."""
        log.warning("session %s: upstream error %s: %s", self.session_id, code, message)
        if retryable:
            await self.events.emit(Error("upstream_unavailable", UPSTREAM_TROUBLE))
            self.responder.respond(None, say=UPSTREAM_TROUBLE)
            return
        await self.events.emit(Error("upstream_failed", UPSTREAM_LOST))
        self.responder.respond(None, say=UPSTREAM_LOST)
        if self._on_fatal is not None:
            self.tasks.spawn(self._end_after_apology())

    async def _end_after_apology(self) -> None:
        await self.clock.sleep(DRAIN_POLL_S)
        while self.responder.response is not None or self.audio.busy:
            await self.clock.sleep(DRAIN_POLL_S)
        if self._on_fatal is not None:
            await self._on_fatal("ERROR")
