"""``PlaybackPause``: the agent's audio held while a sound over it is judged.

False-interruption recovery pauses the output at the first sound over the agent
(``pause``) and then either resumes it from the same place (``resume``: noise, a
cough, a backchannel) or the cut of a barge-in ends it (``clear``). A pause never
outlives ``limit_s`` of wall time: a watchdog resumes the audio then. Pauses are
numbered so a watchdog of an earlier pause never resumes a later one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from parley.clock import Clock
from parley.events import PlaybackPaused, PlaybackResumed
from parley.voice.io import AudioOutput, EventSink

log = logging.getLogger("parley.voice.session")


class PlaybackPause:
    """The pause state of one voice session's output."""

    def __init__(
        self,
        *,
        session_id: str,
        audio: AudioOutput,
        events: EventSink,
        clock: Clock,
        spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]],
        limit_s: float,
    ) -> None:
        self.session_id = session_id
        self.audio = audio
        self.events = events
        self.clock = clock
        self.spawn = spawn
        self.limit_s = limit_s
        self.current: int | None = None  # the number of the pause holding the output
        self._count = 0

    @property
    def active(self) -> bool:
        return self.current is not None

    def clear(self) -> None:
        """The pause is over without a resume (a barge-in cut, or the agent stopped)."""
        self.current = None

    async def pause(self) -> None:
        if self.audio.speaking and self.current is None:
            self.audio.pause(self.clock.monotonic())  # first: nothing more goes out
            self._count += 1
            self.current = self._count
            self.spawn(self._watchdog(self._count))
            await self.events.emit(PlaybackPaused())

    async def resume(self) -> None:
        if self.current is not None:
            self.current = None
            await self.events.emit(PlaybackResumed())  # before the audio that follows
            self.audio.resume(self.clock.monotonic())

    async def _watchdog(self, pause: int) -> None:
        await self.clock.sleep(self.limit_s)
        if self.current == pause:
            log.info("session %s: no decision on a pause, playing on", self.session_id)
            await self.resume()
