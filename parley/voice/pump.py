"""``AudioPump``: sends a connection's queued agent audio at real-time pace, in batches.

One task per connection asks the ``Playout`` (pure) which frames are due and sends
them all joined into one binary message, so at most ``lead_ms`` of audio is ahead of
the client's playback and an interruption silences the agent at once. The first
audio of a response goes out as soon as it is queued (it tops the client's buffer up
to the lead); while a response plays, the pump sleeps until ``batch_ms`` of audio is
due (the buffer has fallen to ``lead - batch``) and tops it up again: about
1000 / batch_ms sends and wake-ups per second instead of 50. When nothing is queued
but the client is still playing, it polls every frame for new audio and for the end
of playback. The pump tells its owner when the agent starts and stops being audible
(``on_speaking``): from the first batch sent until the client has played everything.

Audio of an older generation is never sent: the generation is checked after the
frames are taken and the callbacks ran, right before the (single) send. Every wait
goes through the injected clock's ``sleep``, so tests drive the pump in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from parley.clock import Clock
from parley.voice.playout import Playout

log = logging.getLogger(__name__)

FRAME_MS = 20
FRAME_SECS = FRAME_MS / 1000
DEFAULT_BATCH_MS = 60.0


class AudioSink(Protocol):
    async def send_audio(self, pcm: bytes) -> None: ...


class AudioPump:
    def __init__(
        self,
        output_rate: int,
        lead_ms: float,
        sink: AudioSink,
        clock: Clock,
        *,
        on_speaking: Callable[[bool], None],
        on_first_audio: Callable[[float], None] | None = None,
        batch_ms: float = DEFAULT_BATCH_MS,
    ) -> None:
        self.playout = Playout(output_rate, FRAME_MS, lead_ms)
        # at least one frame, at most the lead (a bigger batch would wait for an empty buffer)
        batch = min(batch_ms / 1000, self.playout.lead_secs)
        self.batch_secs = max(batch, self.playout.frame_secs)
        self.sink = sink
        self.clock = clock
        self.speaking = False  # the owner flips this through on_speaking
        self._on_speaking = on_speaking
        self._on_first_audio = on_first_audio
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._nap_generation: int | None = None  # the generation a timed sleep began in
        self._nudged = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audio-pump")

    def wake(self) -> None:
        """New audio was queued. A new response's first audio cuts a timed sleep
        (begun for the previous response) short, so it goes out at once."""
        self._wake.set()
        nap, task = self._nap_generation, self._task
        if nap is not None and nap != self.playout.generation and task and not self._nudged:
            self._nudged = True
            task.cancel()  # caught in _nap

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
            if self.speaking or self.playout.has_queued:
                wait = self.playout.room_at(now, self.batch_secs) - now
                # no room for a batch yet: sleep until there is; else poll for new audio
                await self._nap(wait if wait > 0 else FRAME_SECS)
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _nap(self, secs: float) -> None:
        self._nap_generation = self.playout.generation
        try:
            await self.clock.sleep(secs)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._nudged or task is None or task.uncancel() > 0:
                raise  # close() (too)
        finally:
            self._nap_generation = None
            self._nudged = False

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
        if self.playout.generation != generation:
            log.debug("playout cleared before sending: %d frames dropped", len(frames))
            return
        await self.sink.send_audio(frames[0] if len(frames) == 1 else b"".join(frames))
