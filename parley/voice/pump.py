"""``AudioPump``: sends a connection's queued agent audio at real-time pace.

One task per connection asks the ``Playout`` (pure) which frames are due, sends them,
and sleeps until the next one is — so at most ``lead_ms`` of audio is ahead of the
client's playback and an interruption silences the agent at once. The pump also
tells its owner when the agent starts and stops being audible (``on_speaking``):
from the first frame sent until the client has played everything sent.

A frame of an older generation is never sent: if the playout is cleared while a
batch is being sent (an ``await`` per frame), the rest of the batch is dropped.
Every wait goes through the injected ``sleep``, so tests drive the pump in virtual
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from parley.clock import Clock
from parley.voice.playout import Playout

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
FRAME_MS = 20
FRAME_SECS = FRAME_MS / 1000


class AudioSink(Protocol):
    async def send_audio(self, pcm: bytes) -> None: ...


class AudioPump:
    def __init__(
        self,
        output_rate: int,
        lead_ms: float,
        sink: AudioSink,
        clock: Clock,
        sleep: Sleep,
        *,
        on_speaking: Callable[[bool], None],
        on_first_audio: Callable[[float], None] | None = None,
    ) -> None:
        self.playout = Playout(output_rate, FRAME_MS, lead_ms)
        self.sink = sink
        self.clock = clock
        self.sleep = sleep
        self.speaking = False  # the owner flips this through on_speaking
        self._on_speaking = on_speaking
        self._on_first_audio = on_first_audio
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audio-pump")

    def wake(self) -> None:
        """New audio was queued."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._send_due()
            now = self.clock.monotonic()
            if self.speaking and self.playout.drained(now):
                self._on_speaking(False)
            due = self.playout.next_due(now)
            if due is not None:
                await self.sleep(max(0.0, due - now))
            elif self.speaking:
                await self.sleep(FRAME_SECS)  # the client is still playing what we sent
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _send_due(self) -> None:
        now = self.clock.monotonic()
        generation = self.playout.generation
        frames = self.playout.due_frames(now)
        if not frames:
            return
        if self._on_first_audio is not None:
            self._on_first_audio(now)
        if not self.speaking:
            self._on_speaking(True)
        for frame in frames:
            if self.playout.generation != generation:
                log.debug("playout cleared mid-batch: late frames dropped")
                return
            await self.sink.send_audio(frame)
