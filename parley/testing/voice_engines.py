"""Scripted engines for voice-loop tests (see ``parley.testing.voice``).

* ``ScriptedVAD``: a frame's speech probability is written in its samples
  (``vad_frame(prob)``: every sample is ``prob * 10000``).
* ``ScriptedSTT``: every utterance's final transcript comes from a script (optionally
  after a virtual ``delay``); it records the frames and the mode of each utterance.
* ``ToneTTS``: ``ms_per_word`` of a square wave per word; the wave's amplitude says
  which ``synthesize`` call made it (``ToneTTS.call_of(frame)``).
* ``ScriptedLLM``: replies made of text deltas, tool calls, ``Pause`` and errors.
* ``ScriptedEndOfTurn``: an audio end-of-turn model with a fixed score.

Each takes an optional ``clock`` (the virtual one in tests) to wait on for its delays.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from parley.clock import Clock
from parley.engines.base import (
    EngineError,
    LLMChunk,
    STTCapabilities,
    STTMode,
    TextDelta,
    ToolCallRequest,
    TTSCapabilities,
    VADCapabilities,
)

RATE = 16000
FRAME_SAMPLES = 320
PROB_SCALE = 10000


def vad_frame(prob: float) -> bytes:
    """20 ms of 16 kHz audio that ``ScriptedVAD`` scores ``prob``."""
    return np.full(FRAME_SAMPLES, round(prob * PROB_SCALE), dtype="<i2").tobytes()


class ScriptedVADStream:
    def process(self, pcm: bytes) -> float:
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        return 0.0 if samples.size == 0 else min(1.0, max(0.0, samples[-1] / PROB_SCALE))

    def reset(self) -> None:
        """Stateless."""


class ScriptedVAD:
    capabilities = VADCapabilities(sample_rate=RATE, window_samples=FRAME_SAMPLES)

    def open_stream(self) -> ScriptedVADStream:
        return ScriptedVADStream()


class ScriptedEndOfTurn:
    """An audio end-of-turn model that answers ``score`` after ``delay`` (on ``clock``)
    and records the length in seconds of every clip it was asked about."""

    def __init__(self, score: float, *, delay: float = 0.0, clock: Clock | None = None) -> None:
        self.score_value = score
        self.delay = delay
        self.clock = clock
        self.clips: list[float] = []

    async def score(self, audio: np.ndarray[Any, Any]) -> float:
        self.clips.append(len(audio) / RATE)
        if self.delay and self.clock is not None:
            await self.clock.sleep(self.delay)
        return self.score_value


@dataclass
class HeardUtterance:
    frames: int
    mode: STTMode
    text: str


class ScriptedSTT:
    """Final transcripts from a script ("" when it runs out). ``fail_next`` makes the
    next ``finish`` raise it; ``partial`` is returned once after ``partial_after`` frames
    (and again every ``partial_every`` frames after that, if set)."""

    capabilities = STTCapabilities(sample_rate=RATE, streaming=True)

    def __init__(
        self,
        transcripts: Iterable[str] = (),
        *,
        delay: float = 0.0,
        clock: Clock | None = None,
        partial: str = "",
        partial_after: int = 0,
        partial_every: int = 0,
    ) -> None:
        self.transcripts = deque(transcripts)
        self.delay = delay
        self.clock = clock
        self.partial = partial
        self.partial_after = partial_after
        self.partial_every = partial_every
        self.fail_next: EngineError | None = None
        self.utterances: list[HeardUtterance] = []
        self.cancelled = 0

    def open_stream(self) -> ScriptedSTTStream:
        return ScriptedSTTStream(self)

    async def transcribe(self, pcm: bytes) -> str:
        return self.transcripts.popleft() if self.transcripts else ""


class ScriptedSTTStream:
    def __init__(self, engine: ScriptedSTT) -> None:
        self.engine = engine
        self.mode: STTMode = "default"
        self.frames = 0

    async def push(self, pcm: bytes) -> str | None:
        self.frames += 1
        engine = self.engine
        if not engine.partial or self.frames < engine.partial_after:
            return None
        since = self.frames - engine.partial_after
        if since == 0 or (engine.partial_every and since % engine.partial_every == 0):
            return engine.partial
        return None

    async def finish(self) -> str:
        engine = self.engine
        if engine.delay and engine.clock is not None:
            await engine.clock.sleep(engine.delay)
        frames, self.frames = self.frames, 0
        if engine.fail_next is not None:
            failure, engine.fail_next = engine.fail_next, None
            raise failure
        text = engine.transcripts.popleft() if engine.transcripts else ""
        engine.utterances.append(HeardUtterance(frames, self.mode, text))
        return text

    def cancel(self) -> None:
        self.frames = 0
        self.engine.cancelled += 1

    def set_mode(self, mode: STTMode) -> None:
        self.mode = mode

    async def close(self) -> None:
        return None


class ToneTTS:
    """``ms_per_word`` of tone per word, one chunk per word; see the module docstring."""

    capabilities = TTSCapabilities(sample_rate=RATE, streaming=True)

    def __init__(
        self,
        ms_per_word: float = 100,
        *,
        delay: float = 0.0,
        clock: Clock | None = None,
        fail_on: str | None = None,
    ) -> None:
        self.word_samples = round(RATE * ms_per_word / 1000)
        self.delay = delay
        self.clock = clock
        self.fail_on = fail_on
        self.spoken: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        call = len(self.spoken)
        self.spoken.append(text)
        if self.fail_on is not None and self.fail_on in text:
            raise EngineError(f"cannot say {text!r}", code="tts_failed")
        if self.delay and self.clock is not None:
            await self.clock.sleep(self.delay)
        wave = np.tile(np.array([1, -1], dtype="<i2"), self.word_samples // 2) * (100 + call)
        for _ in text.split():
            yield wave.astype("<i2").tobytes()

    @staticmethod
    def call_of(frame: bytes) -> int:
        """Which ``synthesize`` call (index into ``spoken``) made this audio."""
        return int(abs(int(np.frombuffer(frame[:2], dtype="<i2")[0]))) - 100


@dataclass(frozen=True)
class Pause:
    """A virtual-time pause inside a scripted LLM reply."""

    secs: float


Step = str | ToolCallRequest | Pause | EngineError


def tokens(text: str) -> list[str]:
    """Word-sized deltas, like a model's stream."""
    return re.findall(r"\S+\s*", text)


class ScriptedLLM:
    """Answers each call with the next scripted reply (``default`` when none is left).
    A reply is a string (streamed word by word) or a list of steps."""

    def __init__(
        self, *replies: str | Sequence[Step], clock: Clock | None = None, default: str = "Okay."
    ) -> None:
        self.replies: deque[str | Sequence[Step]] = deque(replies)
        self.clock = clock
        self.default = default
        self.calls: list[list[dict[str, Any]]] = []

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk]:
        self.calls.append([dict(m) for m in messages])
        reply = self.replies.popleft() if self.replies else self.default
        steps: Sequence[Step] = tokens(reply) if isinstance(reply, str) else reply
        for step in steps:
            if isinstance(step, Pause):
                assert self.clock is not None, "a Pause needs the LLM's clock"
                await self.clock.sleep(step.secs)
            elif isinstance(step, EngineError):
                raise step
            elif isinstance(step, str):
                yield TextDelta(step)
            else:
                yield step


def book_call(call_id: str = "call_book", name: str = "Sam") -> ToolCallRequest:
    """A ``book_table`` tool call (the demo tool that needs approval)."""
    args = {"name": name, "date": "2026-01-02", "time": "19:00", "party_size": 2}
    return ToolCallRequest(id=call_id, name="book_table", arguments=args)
