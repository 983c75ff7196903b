"""``VoiceInput``: the user's audio of one voice session → VAD, turn-taking, utterances.

Audio in (PCM16 at the input rate, any length) → align to whole samples → resample to
16 kHz → 20 ms frames → VAD → ``TurnTaking`` (pure) on the input audio's own timeline
(``audio_t``: seconds of audio received). While an utterance is open its frames go to
the recogniser (``SttFeed``: calls in order, off the audio path); before it, the last
``start_secs + PREROLL_EXTRA_SECS`` of frames are kept so a hands-free utterance
starts just before the onset the VAD found (push-to-talk starts exactly at key-down).

What comes out goes to an ``InputListener`` (the session): ``vad`` and partial
``transcript`` events, a barge-in, an ended utterance (a future of its final
transcript). Whole 16 kHz frames pass the aligner, resampler and splitter without a
copy, and a frame that changes nothing awaits nothing but the VAD.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Protocol

from parley.audio.pcm import FrameSplitter, SampleAligner
from parley.audio.resample import Resampler
from parley.engines.base import EngineSet, STTMode
from parley.events import Event, Transcript, Vad
from parley.voice.barge_in import BargeIn
from parley.voice.io import VoiceOptions
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

FRAME_SECS = 0.02
FRAME_BYTES_16K = 640
PREROLL_EXTRA_SECS = 0.3  # audio kept from before the speech onset the VAD found

__all__ = ["FRAME_SECS", "InputListener", "VoiceInput"]


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


class VoiceInput:
    """One session's input side (see the module docstring)."""

    def __init__(
        self,
        config: TurnTakingConfig,
        options: VoiceOptions,
        engines: EngineSet,
        listener: InputListener,
    ) -> None:
        self.options = options
        self.listener = listener
        self.turn_taking = TurnTaking(config, options.mode)
        self.vad = engines.vad.open_stream()
        # a VAD that batches windows across sessions offers an async entry point
        self._vad_async = getattr(self.vad, "process_async", None)
        self.stt = engines.stt.open_stream()
        self.stt_feed = SttFeed(self.stt, self._on_partial)
        self.aligner = SampleAligner()
        self.resampler = Resampler(options.input_rate, 16000)
        self.splitter = FrameSplitter(FRAME_BYTES_16K)
        self.audio_t = 0.0  # seconds of input audio processed (the turn-taking clock)
        preroll = math.ceil((config.start_secs + PREROLL_EXTRA_SECS) / FRAME_SECS)
        self.preroll: deque[bytes] = deque(maxlen=preroll)
        self.in_utterance = False

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
        else:
            self.preroll.append(frame)
        if events:
            await self._handle(events)

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

    def set_stt_mode(self, mode: STTMode) -> None:
        """``yes_no`` while a spoken approval answer is awaited, else ``default``."""
        self.stt_feed.set_mode(mode)

    async def close(self) -> None:
        await self.stt_feed.close()

    async def _on_partial(self, text: str) -> None:
        if self.options.transcripts:
            await self.listener.emit(Transcript(text))
        await self._handle(self.turn_taking.on_partial(text, self.audio_t))

    async def _handle(self, events: list[TurnTakingEvent]) -> None:
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._open_utterance()
                await self.listener.emit(Vad("speech_started"))
            elif isinstance(ev, SpeechStopped):
                await self.listener.emit(Vad("speech_stopped"))
            elif isinstance(ev, BargeIn):
                await self.listener.barge_in()
            elif isinstance(ev, UtteranceDiscarded):
                self.in_utterance = False
                self.stt_feed.cancel()
            elif isinstance(ev, UtteranceEnded):
                self.in_utterance = False
                # queued now, before any later audio
                self.listener.utterance_ended(self.stt_feed.finish())

    def _open_utterance(self) -> None:
        """Speech confirmed: the recogniser gets the audio from just before its onset
        (hands-free); push-to-talk starts exactly at key-down."""
        self.in_utterance = True
        if self.turn_taking.mode is Mode.HANDS_FREE:
            for frame in self.preroll:
                self.stt_feed.push(frame)
        self.preroll.clear()
