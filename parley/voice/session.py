"""``VoiceSession``: one voice attachment of a session, whatever the transport.

Audio and control calls in; ``Event``s (to an ``EventSink``) and agent audio (to an
``AudioOutput``) out. The transport owns the wire: it parses what arrives into calls
(``feed_audio``, ``ptt``, ``user_turn``, ``decide``, ``interrupt``,
``client_played``) and renders what the sinks get. Inside, three parts:

* ``VoiceInput``: audio → VAD → turn-taking → utterances (``parley.voice.input``);
  None in a session whose upstream hears the caller itself (``cascaded_input``);
* ``Responder``: one spoken response at a time, interrupts, the busy retry, spoken
  approvals (``parley.voice.responder``, turns through ``VoiceTurns``);
* the output, which paces the audio and reports what was heard, and ``TextInStep``,
  which sends assistant text in step with it.

A final transcript answers a pending approval ("yes"/"no") or becomes a user turn of
the same ``Brain`` chat uses. User speech while the agent talks (barge-in) stops the
agent, tells the client ``interrupted`` and stores the assistant message truncated
to what was heard. With false-interruption recovery (``voice.false_interruption_secs``
> 0, the default) a sound over the agent first pauses its audio (``playback_paused``)
and then either resumes it from the same place (``playback_resumed``: noise, a cough,
a backchannel) or cuts it as a barge-in does. A pause never outlives its window by
more than ``PAUSE_GRACE_S`` of wall time (a client that stops sending audio mid-pause,
or switches to push-to-talk): the agent then plays on.

Time: turn-taking runs on the input audio's own timeline; pacing, latency and "what
was heard" use ``clock.monotonic()``; every wait goes through ``clock.sleep`` so tests
drive it in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import ClassVar

from parley.brain.core import UserInput
from parley.clock import Clock
from parley.config import AgentSpec
from parley.engines.base import EngineError, EngineSet, STTMode
from parley.events import Error, Event, Transcript
from parley.voice.background import BackgroundTasks
from parley.voice.drafts import PreemptiveReplies, preemption_enabled
from parley.voice.false_interruption import FalseInterruptionConfig
from parley.voice.input import FRAME_SECS, VoiceInput
from parley.voice.io import AudioOutput, EventSink, VoiceOptions
from parley.voice.playback_pause import PlaybackPause
from parley.voice.responder import Responder
from parley.voice.response import APOLOGY, Timings
from parley.voice.text_sync import TextInStep
from parley.voice.turn_taking import TurnTakingConfig
from parley.voice.turns import VoiceTurns

log = logging.getLogger(__name__)

__all__ = ["FRAME_SECS", "VoiceOptions", "VoiceSession"]


NOTICE_POLL_S = 0.1
PAUSE_GRACE_S = 1.0


def _no_stt(mode: STTMode) -> None:
    """``set_stt_mode`` of a session with no recogniser of its own."""


class VoiceSession:
    """One voice attachment (see the module docstring)."""

    # Preemptive replies (voice.preemptive_generation); off in a subclass that holds or
    # reshapes user turns (the Realtime endpoint: response.create, client tools).
    drafts_allowed: ClassVar[bool] = True
    # Parley's own input side (VAD, turn-taking, STT, end-of-turn model); off in a
    # subclass whose upstream hears the caller itself (the speech-to-speech session):
    # then no VAD or STT stream is opened and ``input`` is None.
    cascaded_input: ClassVar[bool] = True

    def __init__(
        self,
        *,
        turns: VoiceTurns,
        agent: AgentSpec,
        engines: EngineSet,
        events: EventSink,
        audio: AudioOutput,
        options: VoiceOptions,
        clock: Clock,
    ) -> None:
        self.turns = turns
        self.agent = agent
        self.options = options
        self.clock = clock
        self.audio = audio
        self.tasks = BackgroundTasks(turns.session_id)
        self.events = TextInStep(events, lambda: self.responder.speaking)
        self.preemptive = PreemptiveReplies(
            turns,
            self.drafts_allowed and preemption_enabled(agent.voice),
            # no draft while a spoken yes/no is awaited or the agent is heard (a sound
            # over it is mostly a backchannel; a real barge-in cuts it first)
            lambda: self.responder.pending_approval is not None or self.responder.speaking,
            agent.voice.draft_after_secs,
        )
        self.input: VoiceInput | None = None
        if self.cascaded_input:
            self.input = VoiceInput(
                TurnTakingConfig.from_voice_spec(agent.voice),
                options,
                engines,
                self,
                recovery=FalseInterruptionConfig.from_voice_spec(agent.voice),
                clock=clock,
                pauses=self.preemptive,
            )
        self.responder = Responder(
            turns=turns,
            tts=engines.tts,
            output=audio,
            events=self.events,
            output_rate=options.output_rate,
            clock=clock,
            spawn=self.tasks.spawn,
            set_stt_mode=_no_stt if self.input is None else self.input.set_stt_mode,
        )
        self.pause = PlaybackPause(
            session_id=turns.session_id,
            audio=audio,
            events=self.events,
            clock=clock,
            spawn=self.tasks.spawn,
            limit_s=agent.voice.false_interruption_secs + PAUSE_GRACE_S,
        )

    @property
    def session_id(self) -> str:
        return self.turns.session_id

    @property
    def agent_speaking(self) -> bool:
        return self.audio.speaking

    # --- life cycle ------------------------------------------------------------------

    async def start(self, *, greet: str | None = None, initial_turn: bool = False) -> None:
        """Start the audio output; speak a greeting or run the opening turn."""
        self.audio.start(self)
        pending = await self.turns.pending_approval()
        if pending is not None:  # asked before this attachment (e.g. in chat): answer by voice
            self.responder.awaiting_answer(pending)
        if initial_turn:
            self.responder.respond(self.turns.initial_turn)
        elif greet:
            self.responder.respond(None, say=greet)

    async def close(self) -> None:
        """Stop everything; a running response stores what was heard and frees the lock."""
        self.responder.closed = True
        await self.responder.interrupt(notify=False)
        await self.tasks.close()
        await self.responder.interrupt(notify=False)  # a response that registered meanwhile
        await self.audio.close()
        if self.input is not None:
            await self.input.close()
        self.preemptive.close()

    # --- what the transport calls --------------------------------------------------------

    def feed_audio(self, data: bytes) -> Awaitable[None]:
        """PCM16 LE mono at the input rate, any length (odd lengths too). The input's
        own coroutine: no extra await per frame."""
        assert self.input is not None, "a session without cascaded input feeds its own"
        return self.input.feed_audio(data)

    async def ptt(self, down: bool) -> None:
        """Push-to-talk key. Raises ``ValueError`` for a key-up without a key-down."""
        if self.pause.active:  # push-to-talk has no false interruptions
            await self.pause.resume()
        assert self.input is not None, "a session without cascaded input has its own ptt"
        await self.input.ptt(down)

    def user_turn(self, user: UserInput, timings: Timings | None = None) -> None:
        """Run a user turn (speech, typed text or a UI action) and speak the answer."""
        self.responder.respond(lambda: self.turns.user_turn(user), timings=timings)

    def decide(
        self, tool_call_id: str, approved: bool, by: str, timings: Timings | None = None
    ) -> None:
        """Decide a pending approval (by voice or an ``approval`` message)."""
        self.responder.respond(
            lambda: self.turns.decide(tool_call_id, approved, by), timings=timings
        )

    def notice(self, text: str, *, within_s: float = 30.0) -> None:
        """Say ``text`` (a time-limit warning) at the next natural pause: when the agent
        is not speaking, no response is running and the user is not mid-utterance —
        never over the user. Dropped if no pause comes within ``within_s``."""
        self.tasks.spawn(self._notice(text, within_s))

    def _quiet(self) -> bool:
        return (
            self.responder.response is None
            and not self.responder.speaking
            and not (self.input is not None and self.input.in_utterance)
        )

    async def _notice(self, text: str, within_s: float) -> None:
        deadline = self.clock.monotonic() + within_s
        while not self._quiet():
            if self.clock.monotonic() >= deadline:
                log.info("session %s: no pause for the notice %r", self.session_id, text)
                return
            await self.clock.sleep(NOTICE_POLL_S)
        self.responder.respond(None, say=text)

    def decided_elsewhere(self, tool_call_id: str) -> None:
        """An approval this session awaits was decided on another channel: stop
        listening for a spoken yes or no."""
        if self.responder.pending_approval == tool_call_id:
            self.responder.answered()

    async def interrupt(self, *, notify: bool = True) -> None:
        """Stop the agent now; returns once its turn has stored what was heard."""
        await self.responder.interrupt(notify=notify)

    def client_played(self, ms: float) -> None:
        """The client's playback position in the current response (optional)."""
        with contextlib.suppress(ValueError):
            self.audio.client_played(ms, self.clock.monotonic())

    # --- InputListener -------------------------------------------------------------------

    async def emit(self, event: Event) -> None:
        await self.events.emit(event)

    async def barge_in(self) -> None:
        self.pause.clear()  # the cut ends any pause
        await self.responder.interrupt()

    async def playback_paused(self) -> None:
        await self.pause.pause()

    async def playback_resumed(self) -> None:
        await self.pause.resume()

    def utterance_ended(self, final: asyncio.Future[str]) -> None:
        self.preemptive.turn_ended()
        self.tasks.spawn(self._finish_utterance(final, self.clock.monotonic()))

    async def _finish_utterance(self, final: asyncio.Future[str], vad_end: float) -> None:
        try:
            text = (await final).strip()
        except EngineError as exc:
            self.preemptive.take("")  # drops the draft
            log.warning("speech recognition failed: %s", exc)
            await self.events.emit(Error(exc.code, f"speech recognition failed: {exc}"))
            self.responder.respond(None, say=APOLOGY)
            return
        timings = Timings(vad_end=vad_end, stt_final=self.clock.monotonic())
        draft = self.preemptive.take(text)
        if self.options.transcripts or text:
            await self.events.emit(Transcript(text, final=True))
        if not text:
            return
        answer = self.responder.spoken_answer(text)
        if answer is not None:
            if draft is not None:
                draft.cancel()
            self.responder.answered()  # answered, whoever wins the claim
            self.decide(*answer, "voice", timings)
            return
        user = UserInput(text, self.options.channel)
        if draft is None:
            self.user_turn(user, timings)
        else:  # the reply is already under way (parley.voice.drafts)
            self.responder.respond(lambda: self.turns.drafted_turn(user, draft), timings=timings)

    # --- OutputListener ------------------------------------------------------------------

    def speaking_changed(self, speaking: bool) -> None:
        if not speaking:
            self.pause.clear()  # a paused response never drains on its own
        if self.input is not None:
            self.input.set_agent_speaking(speaking)

    def first_audio(self, now: float) -> None:
        self.responder.first_audio(now)

    async def before_audio(self) -> None:
        if self.events.pending:
            await self.events.flush()
