"""The benchmark's fake engines: fixed timings, fixed text, sine audio, energy VAD.

They follow the shared benchmark spec (``bench/fakespec.py`` of the harness), so
one workload can be measured on Parley, Pipecat and the null peer:

=====  ===================================================================
VAD    one decision per 20 ms frame: int16 RMS > 100 is speech (1.0), else 0.0
STT    ignores audio; ``finish()`` returns the fixed transcript 100 ms later
LLM    first token 200 ms after the request, then one word-token every 10 ms:
       a fixed 60-word, 4-sentence reply whose first sentence is 6 tokens
TTS    first 40 ms chunk 80 ms after the request, then one chunk every 10 ms
       (4x real time); 100 ms of 440 Hz sine per word, 16 kHz PCM16
=====  ===================================================================

Timings follow an absolute schedule from the request (the first iteration of
the stream), so a slow consumer does not stretch the fake provider's timing.
Every engine takes a ``clock`` (it waits with ``clock.sleep``) so tests can drive
it in virtual time. Agent files select them by name (see ``FAKE_ENGINE_NAMES``).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, overload

import numpy as np

from parley.clock import Clock, SystemClock
from parley.engines.base import (
    EngineSet,
    EngineUnavailable,
    LLMChunk,
    STTCapabilities,
    STTMode,
    TextDelta,
    TTSCapabilities,
    VADCapabilities,
)

SAMPLE_RATE = 16000
FRAME_SAMPLES = 320  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2

ENERGY_RMS_THRESHOLD = 100.0

STT_DELAY_SECS = 0.100
TRANSCRIPT = "I would like to book a table for two tonight"

LLM_FIRST_TOKEN_SECS = 0.200
LLM_TOKEN_INTERVAL_SECS = 0.010
REPLY_TEXT = (
    "Sure, I can help with that. "
    "I have a table for two available tonight at seven thirty in the main dining room, "
    "right next to the window. "
    "Would you like me to confirm the reservation under your name? "
    "I can also add a note about allergies or a special occasion, "
    "and I will send you a confirmation by text message."
)

TTS_FIRST_AUDIO_SECS = 0.080
TTS_CHUNK_SECS = 0.040
TTS_SPEED = 4.0  # audio is produced at 4x real time: one 40 ms chunk every 10 ms
TTS_SECS_PER_WORD = 0.100
SINE_HZ = 440
SINE_AMPLITUDE = 2000

_WORD = re.compile(r"\S+")


def reply_tokens() -> list[str]:
    """The LLM's word tokens, each after the first with a leading space (like BPE)."""
    words = REPLY_TEXT.split()
    return [words[0], *(" " + word for word in words[1:])]


def first_sentence_tokens() -> int:
    """Tokens up to and including the first one that ends a sentence (6)."""
    for index, token in enumerate(reply_tokens()):
        if token.rstrip().endswith((".", "!", "?")):
            return index + 1
    return len(reply_tokens())


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


class _Schedule:
    """Waits for points of an absolute timeline that starts at ``start()``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = self._clock.monotonic()

    async def at(self, offset_secs: float) -> None:
        delay = self._t0 + offset_secs - self._clock.monotonic()
        if delay > 0:
            await self._clock.sleep(delay)


def _timing(clock: Clock | None) -> Clock:
    return clock or SystemClock()


# --- VAD ------------------------------------------------------------------------------


class FakeEnergyVADStream:
    """Energy decision per 20 ms frame; partial frames wait for the next push."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._probability = 0.0
        self._min_energy = ENERGY_RMS_THRESHOLD**2 * FRAME_SAMPLES

    def process(self, pcm: bytes) -> float:
        """Return the decision of the latest complete frame (earlier ones are unseen)."""
        if not self._pending and len(pcm) == FRAME_BYTES:
            self._probability = self._decide(pcm)
            return self._probability
        self._pending += pcm
        whole = len(self._pending) - len(self._pending) % FRAME_BYTES
        if whole:
            self._probability = self._decide(bytes(self._pending[whole - FRAME_BYTES : whole]))
            del self._pending[:whole]
        return self._probability

    def reset(self) -> None:
        self._pending.clear()
        self._probability = 0.0

    def _decide(self, frame: bytes) -> float:
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        return 1.0 if float(samples @ samples) > self._min_energy else 0.0


class FakeEnergyVAD:
    """Speech probability 1.0 when a 20 ms frame's int16 RMS exceeds 100, else 0.0."""

    capabilities = VADCapabilities(sample_rate=SAMPLE_RATE, window_samples=FRAME_SAMPLES)

    def __init__(self) -> None:
        self.opened = 0  # streams opened, for tests

    def open_stream(self) -> FakeEnergyVADStream:
        self.opened += 1
        return FakeEnergyVADStream()


# --- STT ------------------------------------------------------------------------------


class FakeSTTStream:
    """Ignores audio; every utterance's transcript is ``TRANSCRIPT``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def push(self, pcm: bytes) -> str | None:
        return None

    async def finish(self) -> str:
        schedule = _Schedule(self._clock)
        schedule.start()
        await schedule.at(STT_DELAY_SECS)
        return TRANSCRIPT

    def cancel(self) -> None:
        """Nothing to drop: the fake keeps no audio."""

    def set_mode(self, mode: STTMode) -> None:
        if mode not in ("default", "yes_no"):
            raise ValueError(f"unknown STT mode {mode!r}; expected 'default' or 'yes_no'")

    async def close(self) -> None:
        return None


class FakeSTT:
    """Final transcript ``STT_DELAY_SECS`` after the end of the utterance."""

    capabilities = STTCapabilities(sample_rate=SAMPLE_RATE, streaming=True)

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = _timing(clock)
        self.opened = 0  # streams opened, for tests

    def open_stream(self) -> FakeSTTStream:
        self.opened += 1
        return FakeSTTStream(self._clock)

    async def transcribe(self, pcm: bytes) -> str:
        return await self.open_stream().finish()


# --- LLM ------------------------------------------------------------------------------


class FakeLLM:
    """Streams ``REPLY_TEXT`` word by word on a fixed schedule; never calls tools."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = _timing(clock)
        self._tokens = tuple(reply_tokens())

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncGenerator[LLMChunk, None]:
        schedule = _Schedule(self._clock)
        schedule.start()
        for index, token in enumerate(self._tokens):
            await schedule.at(LLM_FIRST_TOKEN_SECS + index * LLM_TOKEN_INTERVAL_SECS)
            yield TextDelta(token)


# --- TTS ------------------------------------------------------------------------------


class FakeTTS:
    """A 440 Hz sine, 100 ms per word, in 40 ms chunks produced at 4x real time.

    The sine repeats exactly every ``SAMPLE_RATE / gcd(SAMPLE_RATE, SINE_HZ)``
    samples (400), so one period plus one chunk is computed here, once, and every
    chunk is a slice of it. Build one instance per process and share it.
    """

    capabilities = TTSCapabilities(sample_rate=SAMPLE_RATE, streaming=True)

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = _timing(clock)
        self._chunk_samples = round(TTS_CHUNK_SECS * SAMPLE_RATE)
        self._period = SAMPLE_RATE // math.gcd(SAMPLE_RATE, SINE_HZ)
        n = np.arange(self._period + self._chunk_samples)
        wave = SINE_AMPLITUDE * np.sin(2 * np.pi * SINE_HZ * n / SAMPLE_RATE)
        self._sine = wave.astype("<i2").tobytes()

    def audio_samples(self, text: str) -> int:
        """How many samples ``synthesize(text)`` yields in total."""
        return round(word_count(text) * TTS_SECS_PER_WORD * SAMPLE_RATE)

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        schedule = _Schedule(self._clock)
        schedule.start()
        total = self.audio_samples(text)
        interval = TTS_CHUNK_SECS / TTS_SPEED
        position = 0
        index = 0
        while position < total:
            count = min(self._chunk_samples, total - position)
            start = position % self._period
            await schedule.at(TTS_FIRST_AUDIO_SECS + index * interval)
            yield self._sine[2 * start : 2 * (start + count)]
            position += count
            index += 1


# --- selection by name -----------------------------------------------------------------

EngineKind = Literal["llm", "stt", "tts", "vad"]
FakeEngine = FakeLLM | FakeSTT | FakeTTS | FakeEnergyVAD

FAKE_ENGINE_NAMES: MappingProxyType[str, str] = MappingProxyType(
    {"llm": "fake", "stt": "fake", "tts": "fake", "vad": "fake_energy"}
)
"""The name that selects the fake engine of each kind in an agent file."""


def is_fake_engine(kind: str, name: str) -> bool:
    return FAKE_ENGINE_NAMES.get(kind) == name


@overload
def fake_engine(kind: Literal["llm"], name: str, *, clock: Clock | None = ...) -> FakeLLM: ...
@overload
def fake_engine(kind: Literal["stt"], name: str, *, clock: Clock | None = ...) -> FakeSTT: ...
@overload
def fake_engine(kind: Literal["tts"], name: str, *, clock: Clock | None = ...) -> FakeTTS: ...
@overload
def fake_engine(kind: Literal["vad"], name: str, *, clock: Clock | None = ...) -> FakeEnergyVAD: ...
@overload
def fake_engine(kind: str, name: str, *, clock: Clock | None = ...) -> FakeEngine: ...
def fake_engine(kind: str, name: str, *, clock: Clock | None = None) -> FakeEngine:
    """A new fake engine of ``kind`` named ``name``; ``EngineUnavailable`` if none is."""
    if kind not in FAKE_ENGINE_NAMES:
        known = ", ".join(FAKE_ENGINE_NAMES)
        raise EngineUnavailable(
            f"unknown engine kind {kind!r} (expected one of {known})", code="unknown_engine"
        )
    if not is_fake_engine(kind, name):
        raise EngineUnavailable(
            f"no fake {kind} engine named {name!r} (the fake {kind} is "
            f"{FAKE_ENGINE_NAMES[kind]!r})",
            code="unknown_engine",
        )
    if kind == "llm":
        return FakeLLM(clock=clock)
    if kind == "stt":
        return FakeSTT(clock=clock)
    if kind == "tts":
        return FakeTTS(clock=clock)
    return FakeEnergyVAD()


@dataclass(frozen=True, slots=True)
class FakeEngines:
    """One of each fake engine; ``engine_set()`` gives the voice side."""

    llm: FakeLLM
    stt: FakeSTT
    tts: FakeTTS
    vad: FakeEnergyVAD

    def engine_set(self) -> EngineSet:
        return EngineSet(stt=self.stt, tts=self.tts, vad=self.vad)


def make_fake_engines(*, clock: Clock | None = None) -> FakeEngines:
    """All four fakes sharing one clock (real time by default)."""
    return FakeEngines(
        llm=FakeLLM(clock=clock),
        stt=FakeSTT(clock=clock),
        tts=FakeTTS(clock=clock),
        vad=FakeEnergyVAD(),
    )
