"""``AudioPump``: the push-paced ``AudioOutput``: queued agent audio goes out at
real-time pace, in batches (the browser and phone carriers).

One task per session asks the ``Playout`` (pure) which frames are due and sends
them all joined into one binary message, so at most ``lead_ms`` of audio is ahead of
the client's playback and an interruption silences the agent at once. The first
audio of a response goes out as soon as it is queued (it tops the client's buffer up
to the lead); while a response plays, the pump sleeps until ``batch_ms`` of audio is
due (the buffer has fallen to ``lead - batch``) and tops it up again: about
1000 / batch_ms sends and wake-ups per second instead of 50. When nothing is queued
but the client is still playing, it polls every frame for new audio and for the end
of playback. The pump tells its listener when the agent starts and stops being
audible (``speaking_changed``): from the first batch sent until the client has
played everything, and before each batch (``before_audio``, so text goes in step).

``pause`` holds the response (nothing more is sent; the queue and its place are
kept, and the client is told to hold its buffer); ``resume`` sends on from there.

Audio of an older generation is never sent: the generation is checked after the
frames are taken and the listener ran, right before the (single) send. Every wait
goes through the injected clock's ``sleep``, so tests drive the pump in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from parley.clock import Clock
from parley.voice.io import OutputListener, VoiceOptions
from parley.voice.playout import Playout

log = logging.getLogger(__name__)

FRAME_MS = 20
FRAME_SECS = FRAME_MS / 1000
DEFAULT_BATCH_MS = 60.0


class AudioSink(Protocol):
    async def send_audio(self, pcm: bytes) -> None: ...


class AudioPump:
    """A push-paced ``parley.voice.io.AudioOutput`` (see the module docstring)."""

    def __init__(
        self,
        output_rate: int,
        lead_ms: float,
        sink: AudioSink,
        clock: Clock,
        *,
        batch_ms: float = DEFAULT_BATCH_MS,
    ) -> None:
        self.playout = Playout(output_rate, FRAME_MS, lead_ms)
        # at least one frame, at most the lead (a bigger batch would wait for an empty buffer)
        batch = min(batch_ms / 1000, self.playout.lead_secs)
        self.batch_secs = max(batch, self.playout.frame_secs)
        self.sink = sink
        self.clock = clock
        self._speaking = False
        self._listener: OutputListener | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._nap_generation: int | None = None  # the generation a timed sleep began in
        self._nudged = False

    @classmethod
    def for_options(cls, options: VoiceOptions, sink: AudioSink, clock: Clock) -> AudioPump:
        """The pump for a session's ``VoiceOptions`` (rate, lead and batch)."""
        return cls(
            options.output_rate, options.lead_ms, sink, clock, batch_ms=options.send_batch_ms
        )

    # --- AudioOutput -------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def busy(self) -> bool:
        return self._speaking or self.playout.has_queued

    def start(self, listener: OutputListener) -> None:
        self._listener = listener
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audio-pump")

    def new_generation(self) -> int:
        return self.playout.new_generation()

    def enqueue(self, pcm: bytes, text: str, generation: int, *, extend: bool) -> bool:
        if not self.playout.enqueue(pcm, text, generation, extend=extend):
            return False
        self.wake()
        return True

    def clear(self, now: float) -> str:
        heard = self.playout.clear(now)
        self._set_speaking(False)
        return heard

    def pause(self, now: float) -> None:
        self.playout.pause(now)

    def resume(self, now: float) -> None:
        self.playout.resume(now)
        self._wake.set()

    def client_played(self, ms: float, now: float) -> None:
        self.playout.client_played(ms, now)

    def drained(self, now: float) -> bool:
        return self.playout.drained(now)

    def played_secs(self, now: float) -> float:
        return self.playout.played_secs(now)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- pacing ------------------------------------------------------------------------

    def wake(self) -> None:
        """New audio was queued. A new response's first audio cuts a timed sleep
        (begun for the previous response) short, so it goes out at once."""
        self._wake.set()
        nap, task = self._nap_generation, self._task
        if nap is not None and nap != self.playout.generation and task and not self._nudged:
            self._nudged = True
            task.cancel()  # caught in _nap

    def _set_speaking(self, speaking: bool) -> None:
        if speaking != self._speaking:
            self._speaking = speaking
            if self._listener is not None:
                self._listener.speaking_changed(speaking)

    async def _run(self) -> None:
        while True:
            await self._send_due()
            now = self.clock.monotonic()
            if self._speaking and self.playout.drained(now):
                self._set_speaking(False)
                if self._listener is not None:
                    await self._listener.before_audio()
            if self.playout.paused:
                self._wake.clear()
                await self._wake.wait()  # resume, or clear / a new response (enqueue)
            elif self._speaking or self.playout.has_queued:
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
        listener = self._listener
        if listener is not None:
            listener.first_audio(now)
        self._set_speaking(True)
        if listener is not None:
            await listener.before_audio()
        if self.playout.generation != generation:
            log.debug("playout cleared before sending: %d frames dropped", len(frames))
            return
        await self.sink.send_audio(frames[0] if len(frames) == 1 else b"".join(frames))
