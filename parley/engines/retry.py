"""Retry with exponential backoff, shared by ``RetrySTT`` and ``RetryTTS``.

An attempt is repeated while it fails with a *retryable* ``ProviderError``, up to
``attempts`` tries in all, waiting ``backoff_s``, then twice that, and so on, between
tries. Any other error, or the last failure, propagates as it is. The waits go
through the injected ``Clock`` so tests need not wait.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from parley.clock import Clock, SystemClock
from parley.engines.base import ProviderError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RetryPolicy:
    """How often and how patiently to retry one engine call."""

    def __init__(self, attempts: int, backoff_s: float, clock: Clock | None = None) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0, got {backoff_s}")
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._clock = clock or SystemClock()

    async def run(self, what: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """The result of the first ``attempt_once()`` that does not fail retryably;
        ``what`` names the engine kind in log lines ("STT", "TTS")."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await attempt_once()
            except ProviderError as exc:
                if not exc.retryable or attempt == self.attempts:
                    raise
                delay = self.backoff_s * 2.0 ** (attempt - 1)
                logger.warning(
                    "%s attempt %d/%d failed (%s); retrying in %.2fs",
                    what, attempt, self.attempts, exc, delay,
                )  # fmt: skip
                await self._clock.sleep(delay)
        raise AssertionError("unreachable")
