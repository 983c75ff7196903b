"""``UnpacedOutput``: the ``AudioOutput`` for a client that paces playback itself.

A Realtime-style client buffers and plays the audio it gets, so the server sends each
piece as soon as it is synthesised instead of at real-time pace. What the user heard
is still known: the client is assumed to play from the first audio on, in real time,
unless it reports its position (``client_played``, e.g. from a truncate message). The
agent counts as speaking from the first send until that estimate has played all.

One task sends, in order, from an outbox; audio of a cleared generation is dropped
before it is sent. Waits go through the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from parley.clock import Clock
from parley.voice.io import OutputListener
from parley.voice.playout import Playout
from parley.voice.pump import FRAME_MS, AudioSink

UNBOUNDED_LEAD_MS = 24 * 3600 * 1000.0  # the client holds whatever it is sent

__all__ = ["UnpacedOutput"]


class UnpacedOutput:
    """An unpaced ``parley.voice.io.AudioOutput`` (see the module docstring)."""

    def __init__(self, output_rate: int, sink: AudioSink, clock: Clock) -> None:
        self.playout = Playout(output_rate, FRAME_MS, UNBOUNDED_LEAD_MS)
        self.sink = sink
        self.clock = clock
        self._speaking = False
        self._listener: OutputListener | None = None
        self._outbox: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._task: asyncio.Task[Any] | None = None
        self._unpaused = asyncio.Event()
        self._unpaused.set()

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def busy(self) -> bool:
        return self._speaking or not self._outbox.empty()

    def start(self, listener: OutputListener) -> None:
        self._listener = listener
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="unpaced-output")

    def new_generation(self) -> int:
        self._unpaused.set()
        return self.playout.new_generation()

    def enqueue(self, pcm: bytes, text: str, generation: int, *, extend: bool) -> bool:
        if not self.playout.enqueue(pcm, text, generation, extend=extend):
            return False
        self._hand_out()
        return True

    def _hand_out(self) -> None:
        frames = self.playout.due_frames(self.clock.monotonic())  # all of it: no lead limit
        if frames:  # none while paused: they wait for resume
            self._outbox.put_nowait((self.playout.generation, b"".join(frames)))

    def clear(self, now: float) -> str:
        heard = self.playout.clear(now)
        self._unpaused.set()
        self._set_speaking(False)
        return heard

    def pause(self, now: float) -> None:
        self.playout.pause(now)
        self._unpaused.clear()

    def resume(self, now: float) -> None:
        self.playout.resume(now)
        self._hand_out()
        self._unpaused.set()

    def client_played(self, ms: float, now: float) -> None:
        self.playout.client_played(ms, now)

    def drained(self, now: float) -> bool:
        return self._outbox.empty() and self.playout.drained(now)

    def played_secs(self, now: float) -> float:
        return self.playout.played_secs(now)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _set_speaking(self, speaking: bool) -> None:
        if speaking != self._speaking:
            self._speaking = speaking
            if self._listener is not None:
                self._listener.speaking_changed(speaking)

    async def _run(self) -> None:
        while True:
            if self.playout.paused:
                await self._unpaused.wait()
                continue
            if self._outbox.empty() and self._speaking:
                await self._until_played_or_more()
                continue
            generation, pcm = await self._outbox.get()
            await self._send(generation, pcm)

    async def _send(self, generation: int, pcm: bytes) -> None:
        listener = self._listener
        if generation != self.playout.generation or listener is None:
            return
        listener.first_audio(self.clock.monotonic())
        self._set_speaking(True)
        await listener.before_audio()
        if generation == self.playout.generation:
            await self.sink.send_audio(pcm)

    async def _until_played_or_more(self) -> None:
        """Sleep until the client has played everything, unless more audio comes first."""
        remaining = self.playout.ahead_secs(self.clock.monotonic())
        if remaining > 0:
            more = asyncio.ensure_future(self._outbox.get())
            timer = asyncio.ensure_future(self.clock.sleep(remaining))
            try:
                await asyncio.wait((more, timer), return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
                if not more.done():
                    more.cancel()
            if more.done() and not more.cancelled():
                await self._send(*more.result())
                return
        if self.playout.drained(self.clock.monotonic()) and self._outbox.empty():
            self._set_speaking(False)
            if self._listener is not None:
                await self._listener.before_audio()
