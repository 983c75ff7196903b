"""TTS wrappers with the same ``TTS`` interface: ``FallbackTTS`` tries engines in
order, ``RetryTTS`` retries one engine on retryable provider errors.

Both switch or retry only *before the first chunk*: once audio has started, the
listener has heard part of the sentence, and speaking it again would be worse than the
error, so a later failure is re-raised as it is.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing

from parley.audio.resample import Resampler
from parley.clock import Clock
from parley.engines.base import TTS, EngineError, TTSCapabilities
from parley.engines.retry import RetryPolicy

logger = logging.getLogger(__name__)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


async def _start(engine: TTS, text: str) -> tuple[AsyncIterator[bytes], bytes | None]:
    """Begin synthesis and wait for the first chunk (None when there is no audio).
    On error the engine's iterator is closed before the error propagates."""
    chunks = engine.synthesize(text)
    try:
        return chunks, await anext(chunks)
    except StopAsyncIteration:
        return chunks, None
    except BaseException:
        await _close(chunks)
        raise


class FallbackTTS:
    """Speaks with the first engine that starts producing audio.

    Output is at the first engine's sample rate; a later engine's audio is resampled.
    An engine that raises ``EngineError`` before its first chunk is skipped; when all
    fail, the last error is raised with the earlier ones attached as notes.
    """

    def __init__(self, engines: Sequence[TTS]) -> None:
        if not engines:
            raise ValueError("FallbackTTS needs at least one engine")
        self.engines = list(engines)
        self.capabilities = TTSCapabilities(
            sample_rate=self.engines[0].capabilities.sample_rate,
            streaming=all(e.capabilities.streaming for e in self.engines),
        )

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        failures: list[str] = []
        for engine in self.engines:
            try:
                chunks, first = await _start(engine, text)
            except EngineError as exc:
                name = type(engine).__name__
                logger.warning("TTS %s failed before audio (%s); trying the next", name, exc)
                failures.append(f"{name}: [{exc.code}] {exc}")
                if len(failures) == len(self.engines):
                    for note in failures[:-1]:
                        exc.add_note(f"earlier TTS failure: {note}")
                    raise
                continue
            try:
                if first is not None:
                    rate = engine.capabilities.sample_rate
                    resampler = Resampler(rate, self.capabilities.sample_rate)
                    async with aclosing(_resampled(first, chunks, resampler)) as audio:
                        async for pcm in audio:
                            yield pcm
            finally:
                await _close(chunks)
            return


async def _resampled(
    first: bytes, rest: AsyncIterator[bytes], resampler: Resampler
) -> AsyncGenerator[bytes, None]:
    if out := resampler.process(first):
        yield out
    async for chunk in rest:
        if out := resampler.process(chunk):
            yield out
    if tail := resampler.flush():
        yield tail


class RetryTTS:
    """Retries ``inner`` when it fails with a retryable ``ProviderError`` before its
    first chunk; waits ``backoff_s``, doubling, between attempts (on the injected
    ``clock``, so tests need not wait)."""

    def __init__(
        self, inner: TTS, attempts: int = 2, backoff_s: float = 0.2, *, clock: Clock | None = None
    ) -> None:
        self._policy = RetryPolicy(attempts, backoff_s, clock)
        self.inner = inner
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.capabilities = inner.capabilities

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        chunks, first = await self._policy.run("TTS", lambda: _start(self.inner, text))
        try:
            if first is not None:
                yield first
                async for chunk in chunks:
                    yield chunk
        finally:
            await _close(chunks)
