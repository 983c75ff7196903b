"""STT wrappers with the same ``STT`` interface.

* :class:`BufferedSTTStream` gives a batch recogniser the stream interface: ``push``
  buffers the utterance, ``finish`` transcribes it. The utterance boundaries come
  from the voice loop's VAD, so this is how a batch engine is "VAD-chunked".
* :class:`VADChunkedSTT` wraps any object with ``transcribe`` (and capabilities)
  into a full ``STT`` using that stream.
* :class:`FallbackSTT` tries engines in order. Its stream keeps the current
  utterance's audio; when an engine fails mid-utterance the next engine gets the
  audio replayed, and the stream stays on it from then on (new streams start again
  with the first engine).
* :class:`RetrySTT` retries retryable ``ProviderError``s of a batch engine with
  exponential backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from parley.clock import Clock
from parley.engines.base import STT, EngineError, STTCapabilities, STTMode, STTStream
from parley.engines.retry import RetryPolicy

logger = logging.getLogger(__name__)

MAX_UTTERANCE_S = 120.0
"""Audio kept per utterance; beyond this a stream stops buffering (and says so once)."""

Transcribe = Callable[[bytes], Awaitable[str]]


class BatchSTT(Protocol):
    """Anything that transcribes a whole utterance."""

    capabilities: STTCapabilities

    async def transcribe(self, pcm: bytes) -> str: ...


def check_mode(mode: str) -> STTMode:
    """``mode`` as an ``STTMode``, or a ValueError naming the allowed modes."""
    if mode == "default":
        return "default"
    if mode == "yes_no":
        return "yes_no"
    raise ValueError(f"unknown STT mode {mode!r}; expected 'default' or 'yes_no'")


class _UtteranceBuffer:
    """PCM of the current utterance, capped at ``max_bytes``."""

    def __init__(self, sample_rate: int, max_utterance_s: float = MAX_UTTERANCE_S) -> None:
        self._max_bytes = int(sample_rate * max_utterance_s) * 2
        self._data = bytearray()
        self._warned = False

    def add(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        room = self._max_bytes - len(self._data)
        if len(pcm) > room and not self._warned:
            logger.warning("utterance longer than %d bytes; dropping the rest", self._max_bytes)
            self._warned = True
        self._data += pcm[: max(room, 0)]

    def take(self) -> bytes:
        data = bytes(self._data)
        self.clear()
        return data

    def peek(self) -> bytes:
        return bytes(self._data)

    def clear(self) -> None:
        self._data.clear()
        self._warned = False


class BufferedSTTStream:
    """Stream interface over ``transcribe``: no partials, one request per utterance."""

    def __init__(self, transcribe: Transcribe, sample_rate: int = 16000) -> None:
        self._transcribe = transcribe
        self._audio = _UtteranceBuffer(sample_rate)
        self._generation = 0
        self._closed = False
        self.mode: STTMode = "default"  # batch engines have no grammar; kept for callers

    async def push(self, pcm: bytes) -> str | None:
        if self._closed:
            raise RuntimeError("the STT stream is closed")
        self._audio.add(pcm)
        return None

    async def finish(self) -> str:
        if self._closed:
            raise RuntimeError("the STT stream is closed")
        pcm = self._audio.take()
        if not pcm:
            return ""
        generation = self._generation
        text = await self._transcribe(pcm)
        return text if generation == self._generation else ""

    def cancel(self) -> None:
        self._generation += 1
        self._audio.clear()

    def set_mode(self, mode: STTMode) -> None:
        self.mode = check_mode(mode)

    async def close(self) -> None:
        self._closed = True
        self.cancel()


class VADChunkedSTT:
    """A batch recogniser as an ``STT``: utterances are buffered and sent on ``finish``."""

    def __init__(self, batch_stt: BatchSTT) -> None:
        self.inner = batch_stt
        self.capabilities = STTCapabilities(
            sample_rate=batch_stt.capabilities.sample_rate, streaming=False
        )

    def open_stream(self) -> BufferedSTTStream:
        return BufferedSTTStream(self.inner.transcribe, self.capabilities.sample_rate)

    async def transcribe(self, pcm: bytes) -> str:
        return await self.inner.transcribe(pcm)


def _exhausted(failures: list[EngineError]) -> EngineError:
    last = failures[-1]
    for earlier in failures[:-1]:
        last.add_note(f"earlier STT failure: [{earlier.code}] {earlier}")
    return last


class FallbackSTT:
    """The first engine that works. All engines must share one sample rate."""

    def __init__(self, engines: Sequence[STT]) -> None:
        if not engines:
            raise ValueError("FallbackSTT needs at least one engine")
        rates = {e.capabilities.sample_rate for e in engines}
        if len(rates) != 1:
            raise ValueError(f"FallbackSTT engines must share a sample rate, got {sorted(rates)}")
        self.engines = list(engines)
        self.capabilities = self.engines[0].capabilities

    def open_stream(self) -> FallbackSTTStream:
        return FallbackSTTStream(self.engines, self.capabilities.sample_rate)

    async def transcribe(self, pcm: bytes) -> str:
        failures: list[EngineError] = []
        for engine in self.engines:
            try:
                return await engine.transcribe(pcm)
            except EngineError as exc:
                logger.warning("STT %s failed (%s); trying the next", type(engine).__name__, exc)
                failures.append(exc)
        raise _exhausted(failures)


class FallbackSTTStream:
    def __init__(self, engines: Sequence[STT], sample_rate: int) -> None:
        self._engines = engines
        self._index = 0
        self._stream: STTStream = engines[0].open_stream()
        self._audio = _UtteranceBuffer(sample_rate)
        self._failures: list[EngineError] = []
        self._mode: STTMode = "default"

    @property
    def engine(self) -> STT:
        """The engine this stream uses now."""
        return self._engines[self._index]

    async def push(self, pcm: bytes) -> str | None:
        self._audio.add(pcm)
        try:
            return await self._stream.push(pcm)
        except EngineError as exc:
            return await self._switch_and_replay(exc)

    async def finish(self) -> str:
        try:
            try:
                return await self._stream.finish()
            except EngineError as exc:
                failure = exc
            while True:
                await self._switch_and_replay(failure)
                try:
                    return await self._stream.finish()
                except EngineError as exc:
                    failure = exc
        finally:
            self._audio.clear()

    def cancel(self) -> None:
        self._audio.clear()
        self._stream.cancel()

    def set_mode(self, mode: STTMode) -> None:
        self._mode = check_mode(mode)
        self._stream.set_mode(mode)

    async def close(self) -> None:
        self._audio.clear()
        await self._stream.close()

    async def _switch_and_replay(self, failure: EngineError) -> str | None:
        """Move to the next engine and give it this utterance's audio so far."""
        while True:
            self._failures.append(failure)
            name = type(self.engine).__name__
            if self._index + 1 >= len(self._engines):
                raise _exhausted(self._failures)
            logger.warning("STT %s failed mid-stream (%s); switching to the next", name, failure)
            try:
                await self._stream.close()
            except EngineError:
                pass
            self._index += 1
            self._stream = self.engine.open_stream()
            self._stream.set_mode(self._mode)
            audio = self._audio.peek()
            try:
                return await self._stream.push(audio) if audio else None
            except EngineError as exc:
                failure = exc


class RetrySTT:
    """Retries ``inner.transcribe`` on retryable ``ProviderError``s, waiting
    ``backoff_s`` (doubling) between attempts; the waits use the injected ``clock``.
    Streams of a batch ``inner`` transcribe through the retry; a streaming ``inner``
    keeps its own streams (local engines, nothing to retry)."""

    def __init__(
        self, inner: STT, attempts: int = 2, backoff_s: float = 0.2, *, clock: Clock | None = None
    ) -> None:
        self._policy = RetryPolicy(attempts, backoff_s, clock)
        self.inner = inner
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.capabilities = inner.capabilities

    def open_stream(self) -> STTStream:
        if self.capabilities.streaming:
            return self.inner.open_stream()
        return BufferedSTTStream(self.transcribe, self.capabilities.sample_rate)

    async def transcribe(self, pcm: bytes) -> str:
        return await self._policy.run("STT", lambda: self.inner.transcribe(pcm))
