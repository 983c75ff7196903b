"""Injected time. Anything with a timer takes a ``Clock``; tests pass ``FakeClock``.

A ``Clock`` reads time (``monotonic``, ``now``) and waits on it (``sleep``): code that
waits calls ``clock.sleep`` instead of ``asyncio.sleep``, so a test's virtual clock
(``parley.testing.FakeClock``) decides when every timer fires.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a monotonic scale (timeouts, pacing, TTLs)."""
        ...

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC (stored timestamps, expiries)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
