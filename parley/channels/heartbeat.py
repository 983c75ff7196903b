"""A voice connection's heartbeat (the agent file's ``limits.heartbeat_s``).

The client sends something — audio, any control frame, ``{"type": "ping"}`` — at least
every ``heartbeat_s`` (announced in ``ready``; the web page pings at that interval).
After ``MISSES`` intervals without a frame the connection is taken for dead and closed
as a drop, so the session stays resumable for ``resume_grace_s``. Protocol pings
(uvicorn's, every 20 s) catch a dead TCP peer; this catches a client whose socket lives
on while its app is gone, on the agent's own schedule.
"""

from __future__ import annotations

from parley.clock import Clock

MISSES = 2
CLOSE_CODE = 1001  # going away: the client may resume


class Heartbeat:
    """When the client was last heard from, and a wait for its silence."""

    def __init__(self, clock: Clock, interval_s: float) -> None:
        self.clock = clock
        self.interval_s = interval_s
        self.limit_s = interval_s * MISSES
        self.last = clock.monotonic()

    def beat(self) -> None:
        """A frame arrived."""
        self.last = self.clock.monotonic()

    async def silence(self) -> None:
        """Return once no frame has arrived for ``MISSES`` intervals."""
        while (left := self.last + self.limit_s - self.clock.monotonic()) > 0:
            await self.clock.sleep(left)

    def reason(self) -> str:
        return f"no frame for {self.limit_s:g} s (heartbeat {self.interval_s:g} s)"
