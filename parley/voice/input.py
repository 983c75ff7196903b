"""``VoiceInput``: the user's audio of one voice session → VAD, turn-taking, utterances.

Audio in (PCM16 at the input rate, any length) → align to whole samples → resample to
16 kHz → 20 ms frames → VAD → ``TurnTaking`` (pure) on the input audio's own timeline
(``audio_t``: seconds of audio received). While an utterance is open its frames go to
the recogniser (``SttFeed``: calls in order, off the audio path); before it, the last
``start_secs + prefix_padding_secs`` of frames are kept so a hands-free utterance
starts just before the onset the VAD found (push-to-talk starts exactly at key-down).

False interruptions (``voice.false_interruption_secs`` > 0, hands-free): the same
frames and partials also go to a ``FalseInterruption`` (pure), which turns a sound
over the agent into a pause of its playback, then a resume (noise, a cough, "mm-hm")
or a cut (words: the barge-in). ``TurnTaking``'s own barge-in is then off in
hands-free mode (its ``barge_in_min_secs`` is infinite), so only one of them cuts; a
push-to-talk key-down still interrupts at once. An utterance the agent resumed over
(a cough, "mm-hm") is dropped when it ends, even if the agent has finished by then
(a trailing "mm-hm" makes the end-of-turn detector wait), so a backchannel never
becomes a turn; a cut later in the same utterance keeps it.

Audio end of turn (``turn_detection: smart`` with an ``EndOfTurnModel`` installed,
Smart Turn v3): the utterance's last 8 s of frames are kept; on an ``EndOfTurnCheck``
they are scored off the event loop (the model's batcher, shared by every session) and
the answer goes back to ``TurnTaking.on_end_of_turn_score`` (an answer for a pause
that is over is ignored there; a failed scoring leaves the transcript to decide).

Pause deadline: ``TurnTaking`` runs on the audio's timeline, so when a pause opens
(``pause_onset``) a timer on the session's clock is armed for its
``pause_deadline_secs``; if no audio has ended the pause by then (the client stopped
sending), ``on_pause_deadline`` ends the turn there. A pause that closes disarms it.

Preemptive generation: a ``PauseListener`` hears ``pause_started(transcript)`` once a
pause has lasted its ``after_secs`` of audio (``voice.draft_after_secs``: the short gaps
the VAD hears between words tell it nothing; again when a newer partial arrives later in
the pause) and ``pause_cancelled()`` when the caller speaks on or the utterance is
dropped; an ended turn goes to ``utterance_ended`` as before.

What comes out goes to an ``InputListener`` (the session): ``vad`` and partial
``transcript`` events, a barge-in, a pause and a resume of playback, an ended
utterance (a future of its final transcript). Whole 16 kHz frames pass the aligner,
resampler and splitter without a copy, and a frame that changes nothing awaits
nothing but the VAD.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections import deque
from typing import Any, Protocol

import numpy as np

from parley.audio.pcm import FrameSplitter, SampleAligner
from parley.audio.resample import stream_resampler
from parley.clock import Clock
from parley.engines.base import EndOfTurnModel, EngineError, EngineSet, STTMode
from parley.events import Event, Transcript, Vad
from parley.voice.barge_in import BargeIn
from parley.voice.false_interruption import (
    FalseInterruption,
    FalseInterruptionConfig,
    PlaybackCut,
    PlaybackEvent,
    PlaybackPaused,
    PlaybackResumed,
)
from parley.voice.io import VoiceOptions
from parley.voice.stt_feed import SttFeed
from parley.voice.turn_taking import (
    EndOfTurnCheck,
    Mode,
    SpeechStarted,
    SpeechStopped,
    TurnState,
    TurnTaking,
    TurnTakingConfig,
    TurnTakingError,
    TurnTakingEvent,
    UtteranceDiscarded,
    UtteranceEnded,
)

FRAME_SECS = 0.02
FRAME_BYTES_16K = 640
SCORED_FRAMES = 400  # the audio end-of-turn model looks at the last 8 s
_EPS = 1e-6  # seconds: far below a frame, far above float noise

log = logging.getLogger(__name__)

__all__ = ["FRAME_SECS", "InputListener", "PauseListener", "VoiceInput"]


class InputListener(Protocol):
    async def emit(self, event: Event) -> None:
        """A ``vad`` or ``transcript_partial`` event for the client."""
        ...

    async def barge_in(self) -> None:
        """The user talks over the agent: stop the agent now."""
        ...

    def utterance_ended(self, final: asyncio.Future[str]) -> None:
        """The user's turn ended; ``final`` will hold its transcript."""
        ...

    async def playback_paused(self) -> None:
        """A sound over the agent: hold its playback, keeping the place."""
        ...

    async def playback_resumed(self) -> None:
        """The sound was not an interruption: play on from where it paused."""
        ...


class PauseListener(Protocol):
    """Who hears about pauses (preemptive generation, ``parley.voice.drafts``)."""

    # how long a pause must have lasted (seconds of audio) before ``pause_started``
    after_secs: float

    def pause_started(self, transcript: str) -> None:
        """The user fell silent; ``transcript`` is what was heard so far (called
        again if a newer partial arrives during the pause)."""
        ...

    def pause_cancelled(self) -> None:
        """The pause did not end a turn: the user spoke on, or it was dropped."""
        ...


class VoiceInput:
    """One session's input side (see the module docstring)."""

    def __init__(
        self,
        config: TurnTakingConfig,
        options: VoiceOptions,
        engines: EngineSet,
        listener: InputListener,
        *,
        recovery: FalseInterruptionConfig | None = None,
        clock: Clock | None = None,
        pauses: PauseListener | None = None,
    ) -> None:
        self.options = options
        self.listener = listener
        self.pauses = pauses
        self._clock = clock  # for the pause deadline (None: audio time only)
        self._pause: tuple[float, str] | None = None  # the open pause: onset, transcript
        self._told: tuple[float, str] | None = None  # the pause the listener last heard
        self._deadline: asyncio.Task[None] | None = None
        self.recovery: FalseInterruption | None = None
        if recovery is not None and recovery.window_secs > 0:
            self.recovery = FalseInterruption(recovery)
            # hands-free barge-in is the recovery's to decide (a key-down still cuts)
            config = dataclasses.replace(config, barge_in_min_secs=math.inf)
        self.end_of_turn: EndOfTurnModel | None = engines.end_of_turn
        self.turn_taking = TurnTaking(
            config, options.mode, audio_scores=self.end_of_turn is not None
        )
        # the utterance's audio, for the end-of-turn model; kept only when one is installed
        kept = SCORED_FRAMES if self.end_of_turn is not None else 0
        self._spoken: deque[bytes] = deque(maxlen=kept)
        self._scoring: set[asyncio.Task[Any]] = set()
        self.vad = engines.vad.open_stream()
        # a VAD that batches windows across sessions offers an async entry point
        self._vad_async = getattr(self.vad, "process_async", None)
        self.stt = engines.stt.open_stream()
        self.stt_feed = SttFeed(self.stt, self._on_partial)
        self.aligner = SampleAligner()
        self.resampler = stream_resampler(options.input_rate, 16000)
        self.splitter = FrameSplitter(FRAME_BYTES_16K)
        self.audio_t = 0.0  # seconds of input audio processed (the turn-taking clock)
        preroll = math.ceil((config.start_secs + config.prefix_padding_secs) / FRAME_SECS)
        self.preroll: deque[bytes] = deque(maxlen=preroll)
        self.in_utterance = False
        self._resumed_over = False  # the open utterance was a false interruption

    async def feed_audio(self, data: bytes) -> None:
        """PCM16 LE mono at the input rate, any length (odd lengths too)."""
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
            self._spoken.append(frame)
        else:
            self.preroll.append(frame)
        if (recovery := self._recovery()) is not None:
            playback = recovery.on_frame(prob, now, FRAME_SECS)
            if playback:
                await self._playback(playback)
        if events:
            await self._handle(events)
        elif self.turn_taking.pause_onset is not None or self._pause is not None:
            self._watch_pause()

    def _recovery(self) -> FalseInterruption | None:
        """The false-interruption machine, when it listens (hands-free mode)."""
        return self.recovery if self.turn_taking.mode is Mode.HANDS_FREE else None

    async def ptt(self, down: bool) -> None:
        """Push-to-talk key; the first one switches the session to push-to-talk.
        Raises ``ValueError`` for a key-up without a key-down."""
        now = self.audio_t
        if self.turn_taking.mode is not Mode.PUSH_TO_TALK:
            await self._handle(self.turn_taking.set_mode(Mode.PUSH_TO_TALK, now))
        try:
            events = self.turn_taking.ptt_down(now) if down else self.turn_taking.ptt_up(now)
        except TurnTakingError as exc:
            raise ValueError(str(exc)) from None
        await self._handle(events)

    def set_agent_speaking(self, speaking: bool) -> None:
        self.turn_taking.set_agent_speaking(speaking, self.audio_t)
        if self.recovery is not None:
            if speaking:
                self.recovery.agent_started(self.audio_t)
            else:
                self.recovery.agent_stopped(self.audio_t)

    def set_stt_mode(self, mode: STTMode) -> None:
        """``yes_no`` while a spoken approval answer is awaited, else ``default``
        (then a yes/no over the agent is an answer, not a backchannel)."""
        self.stt_feed.set_mode(mode)
        if self.recovery is not None:
            self.recovery.set_expecting_answer(mode == "yes_no")

    async def close(self) -> None:
        for task in list(self._scoring):
            task.cancel()
        if self._deadline is not None:
            self._deadline.cancel()
        await self.stt_feed.close()

    def _score_end_of_turn(self, model: EndOfTurnModel) -> None:
        """Score the utterance so far off the event loop; the answer goes to turn-taking."""
        pcm = np.frombuffer(b"".join(self._spoken), dtype="<i2")
        task = asyncio.ensure_future(self._scored(model, pcm.astype(np.float32) / 32768.0))
        self._scoring.add(task)
        task.add_done_callback(self._scoring.discard)

    async def _scored(self, model: EndOfTurnModel, audio: np.ndarray[Any, Any]) -> None:
        try:
            score = await model.score(audio)
        except (EngineError, RuntimeError, ValueError) as exc:
            log.warning("end-of-turn model failed, the transcript decides: %s", exc)
            return
        score = min(1.0, max(0.0, float(score)))
        await self._handle(self.turn_taking.on_end_of_turn_score(score, self.audio_t))

    async def _on_partial(self, text: str) -> None:
        if self.options.transcripts:
            await self.listener.emit(Transcript(text))
        events = self.turn_taking.on_partial(text, self.audio_t)
        if (recovery := self._recovery()) is not None:
            playback = recovery.on_partial(text, self.audio_t)
            if playback:
                await self._playback(playback)
        await self._handle(events)

    async def _playback(self, events: list[PlaybackEvent]) -> None:
        for ev in events:
            if isinstance(ev, PlaybackPaused):
                await self.listener.playback_paused()
            elif isinstance(ev, PlaybackResumed):
                self._resumed_over = self.in_utterance
                await self.listener.playback_resumed()
            elif isinstance(ev, PlaybackCut):
                self._resumed_over = False
                await self.listener.barge_in()

    async def _handle(self, events: list[TurnTakingEvent]) -> None:
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._resumed_over = False
                self._open_utterance()
                await self.listener.emit(Vad("speech_started"))
            elif isinstance(ev, SpeechStopped):
                await self.listener.emit(Vad("speech_stopped"))
            elif isinstance(ev, BargeIn):
                await self.listener.barge_in()
            elif isinstance(ev, EndOfTurnCheck) and self.end_of_turn is not None:
                self._score_end_of_turn(self.end_of_turn)
            elif isinstance(ev, UtteranceDiscarded):
                self.in_utterance = False
                self.stt_feed.cancel()
                self._pause_cancelled()
            elif isinstance(ev, UtteranceEnded) and self._resumed_over:
                self.in_utterance = self._resumed_over = False
                self.stt_feed.cancel()  # a backchannel or a noise: not a turn
                self._pause_cancelled()
            elif isinstance(ev, UtteranceEnded):
                self.in_utterance = False
                # queued now, before any later audio
                self.listener.utterance_ended(self.stt_feed.finish())
        self._watch_pause()

    def _watch_pause(self) -> None:
        """Follow the open pause: arm its deadline, tell the listener what it heard."""
        tt = self.turn_taking
        onset = tt.pause_onset
        pause = None if onset is None else (onset, tt.transcript)
        if pause != self._pause:
            old, self._pause = self._pause, pause
            if pause is None or old is None or old[0] != pause[0]:
                if self._deadline is not None:
                    self._deadline.cancel()
                    self._deadline = None
                if pause is not None and self._clock is not None:
                    self._deadline = asyncio.ensure_future(self._pause_deadline(pause[0]))
            if pause is None and tt.state in (TurnState.SPEAKING, TurnState.STARTING):
                self._pause_cancelled()  # the caller spoke on
        if pause is None or pause == self._told or self.pauses is None:
            return
        if self.audio_t - pause[0] >= self.pauses.after_secs - _EPS:
            self._told = pause
            self.pauses.pause_started(pause[1])

    def _pause_cancelled(self) -> None:
        if self.pauses is not None:
            self.pauses.pause_cancelled()

    async def _pause_deadline(self, onset: float) -> None:
        assert self._clock is not None
        await self._clock.sleep(self.turn_taking.pause_deadline_secs)
        self._deadline = None
        try:
            await self._handle(self.turn_taking.on_pause_deadline(onset, self.audio_t))
        except Exception:
            log.exception("ending a pause at its deadline failed")

    def _open_utterance(self) -> None:
        """Speech confirmed: the recogniser gets the audio from just before its onset
        (hands-free); push-to-talk starts exactly at key-down."""
        self.in_utterance = True
        self._spoken.clear()
        if self.turn_taking.mode is Mode.HANDS_FREE:
            for frame in self.preroll:
                self.stt_feed.push(frame)
                self._spoken.append(frame)
        self.preroll.clear()
