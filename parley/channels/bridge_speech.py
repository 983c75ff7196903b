"""Speech of a bridged transfer, transcribed: one recogniser per direction.

``Utterances`` (pure) cuts one leg's 16 kHz audio into utterances with the agent's
VAD: 20 ms frames, speech starts on the first speech frame (with 200 ms of audio
before it), ends after ``stop_ms`` of non-speech. Time is the audio's own (frames
counted), never a clock, so the same audio always gives the same cuts.

``BridgeTranscriber`` feeds a leg's wire audio (any ``LegFormat``) through its own
converter and ``Utterances`` into an ``STTStream``, off the audio path (a queue and
one task), and hands each non-empty final transcript to ``on_text`` (the desk stores
it with role ``user`` or ``human_agent``). ``close`` finishes a pending utterance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from parley.audio.resample import Resampler
from parley.engines.base import STT, VAD, STTStream, VADStream
from parley.handoff.bridge import Direction, LegFormat

log = logging.getLogger(__name__)

RATE = 16000
FRAME_BYTES = RATE // 50 * 2  # 20 ms of PCM16 at 16 kHz
PRE_ROLL_FRAMES = 10
SPEECH_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Speech:
    """Audio of the current utterance (16 kHz PCM16)."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class Ended:
    """The current utterance is over: ask the recogniser for its transcript."""


class Utterances:
    """VAD over 20 ms frames → ``Speech`` pieces and ``Ended`` (module docstring)."""

    def __init__(self, vad: VADStream, stop_ms: int = 600) -> None:
        self.vad = vad
        self.stop_frames = max(1, stop_ms // 20)
        self.speaking = False
        self._quiet = 0
        self._buffer = bytearray()
        self._pre: deque[bytes] = deque(maxlen=PRE_ROLL_FRAMES)

    def feed(self, pcm: bytes) -> list[Speech | Ended]:
        self._buffer += pcm
        out: list[Speech | Ended] = []
        while len(self._buffer) >= FRAME_BYTES:
            frame = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
            speech = self.vad.process(frame) >= SPEECH_THRESHOLD
            if not self.speaking:
                if speech:
                    self.speaking, self._quiet = True, 0
                    out.append(Speech(b"".join(self._pre) + frame))
                    self._pre.clear()
                else:
                    self._pre.append(frame)
                continue
            out.append(Speech(frame))
            self._quiet = 0 if speech else self._quiet + 1
            if self._quiet >= self.stop_frames:
                self.speaking = False
                self.vad.reset()
                out.append(Ended())
        return out

    def end(self) -> list[Speech | Ended]:
        """The leg went away: a pending utterance ends now."""
        if not self.speaking:
            return []
        self.speaking = False
        return [Ended()]


OnText = Callable[[str], Awaitable[None]]


class BridgeTranscriber:
    """One direction's speech → stored text (module docstring)."""

    def __init__(self, stt: STT, vad: VAD, source: LegFormat, on_text: OnText) -> None:
        self._to_vad = Direction(source, LegFormat("pcm16", RATE))
        stt_rate = stt.capabilities.sample_rate
        self._to_stt = Resampler(RATE, stt_rate) if stt_rate != RATE else None
        self._stream: STTStream = stt.open_stream()
        self._cuts = Utterances(vad.open_stream())
        self._on_text = on_text
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="bridge-transcriber")
        self.texts: list[str] = []

    def feed(self, data: bytes) -> None:
        """Wire audio of this direction's source leg (never blocks the bridge)."""
        if data and not self._task.done():
            self._queue.put_nowait(data)

    async def close(self) -> None:
        """Finish the pending utterance (its text is stored), then stop. Called from
        ``on_text`` itself (the words decided something), it only asks the task to stop."""
        if asyncio.current_task() is self._task:
            self._queue.put_nowait(None)
            return
        if not self._task.done():
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 10.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self._stream.close()

    async def _run(self) -> None:
        while True:
            data = await self._queue.get()
            steps = (
                self._cuts.end() if data is None else self._cuts.feed(self._to_vad.convert(data))
            )
            for step in steps:
                try:
                    await self._step(step)
                except Exception:
                    log.exception("transcribing bridged speech failed")
            if data is None:
                return

    async def _step(self, step: Speech | Ended) -> None:
        if isinstance(step, Speech):
            pcm = self._to_stt.process(step.pcm) if self._to_stt is not None else step.pcm
            await self._stream.push(pcm)
            return
        text = (await self._stream.finish()).strip()
        if text:
            self.texts.append(text)
            await self._on_text(text)
