"""Injected time. Anything with a timer takes a ``Clock``; tests pass ``FakeClock``."""

from __future__ import annotations

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


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)
