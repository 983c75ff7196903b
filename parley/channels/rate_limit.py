"""A sliding-window rate limiter keyed by client (per worker process)."""

from __future__ import annotations

import math
from collections import deque

from parley.clock import Clock


class RateLimiter:
    def __init__(self, limit: int, window_s: float, clock: Clock) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._hits: dict[str, deque[float]] = {}

    def check(self, key: str) -> float | None:
        """Record a hit; ``None`` if allowed, else seconds until the next is allowed."""
        if self.limit <= 0:
            return None
        now = self.clock.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(hits[0] + self.window_s - now, 0.0)
        hits.append(now)
        if len(self._hits) > 10_000:  # forget idle clients
            for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]:
                del self._hits[k]
        return None

    @staticmethod
    def retry_after_header(seconds: float) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(seconds)))}
