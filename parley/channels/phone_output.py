"""``CarrierOutput``: the agent's audio on a phone carrier's media stream.

An ``AudioOutput`` (``parley.voice.io``) for one call. Pacing is ``AudioPump``'s (push
paced: at most ``lead_ms`` ahead of real time, in batches), so a barge-in leaves little
queued at the carrier; this class is the pump's sink. Each batch is cut where a segment
of speech (one ``enqueue``, usually a sentence) ends and handed to
``PhoneCall.speak``, which turns it into 20 ms μ-law ``media`` messages plus a
``mark``; the mark after the last piece of a segment carries that segment's text.

Playback truth comes from the carrier: the loop passes every ``Heard`` (a mark
echoed) to ``heard``, which reports the played position to the pump (its pacing and
its "is the agent audible" estimate then follow the carrier), and ``clear`` (barge-in)
sends ``clear`` and returns the text of the segments whose marks came back: the
stored assistant message is cut to what the caller heard, not to a time estimate.

All messages to the carrier leave through one outbox and one writer task, in order,
so a synchronous ``clear`` never overtakes media already handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from parley.clock import Clock
from parley.telephony.call import CallState, Heard, PhoneCall, Send
from parley.voice.io import OutputListener, VoiceOptions
from parley.voice.pump import AudioPump

log = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class _Segment:
    """Text of one ``enqueue`` and how many of its PCM bytes are still to be sent."""

    text: str
    remaining: int


class CarrierOutput:
    """A push-paced ``AudioOutput`` whose playback truth is the carrier's marks."""

    def __init__(
        self, call: PhoneCall, options: VoiceOptions, clock: Clock, send: SendText
    ) -> None:
        self.call = call
        self.rate = options.output_rate
        self.clock = clock
        self.pump = AudioPump.for_options(options, self, clock)
        self._send = send
        self._segments: deque[_Segment] = deque()  # of the pump's current generation
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._writer: asyncio.Task[Any] | None = None
        self.sent_messages = 0

    # --- AudioOutput -------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        return self.pump.speaking

    @property
    def busy(self) -> bool:
        return self.pump.busy

    def start(self, listener: OutputListener) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="carrier-writer")
        self.pump.start(listener)

    def new_generation(self) -> int:
        self._segments.clear()
        return self.pump.new_generation()

    def enqueue(self, pcm: bytes, text: str, generation: int, *, extend: bool) -> bool:
        if not self.pump.enqueue(pcm, text, generation, extend=extend):
            return False
        if extend and self._segments:
            self._segments[-1].remaining += len(pcm)
        else:  # extending a segment already sent: its text went with its last mark
            self._segments.append(_Segment("" if extend else text.strip(), len(pcm)))
        return True

    def clear(self, now: float) -> str:
        """Barge-in: drop what is queued here, ``clear`` the carrier's queue, and
        return the text of this response the caller heard (marks echoed)."""
        generation = self.pump.playout.generation  # the marks' generation
        self.pump.clear(now)
        self._segments.clear()
        self._post(self.call.interrupt().sends)
        heard, _ = self.call.heard(generation)
        return heard

    def pause(self, now: float) -> None:
        """Hold the queue (a possible false interruption). The carrier keeps playing
        what it already has (at most the pump's lead, 200 ms)."""
        self.pump.pause(now)

    def resume(self, now: float) -> None:
        self.pump.resume(now)

    def client_played(self, ms: float, now: float) -> None:
        self.pump.client_played(ms, now)

    def drained(self, now: float) -> bool:
        return self.pump.drained(now)

    def played_secs(self, now: float) -> float:
        return self.pump.played_secs(now)

    async def close(self) -> None:
        await self.pump.close()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.flush()

    async def flush(self) -> None:
        """Send what the outbox holds now (the writer is not running: after ``close``,
        or before ``start``)."""
        while not self._outbox.empty():
            await self._send(self._outbox.get_nowait())
            self.sent_messages += 1

    # --- from the stream loop ------------------------------------------------------------

    def heard(self, heard: Heard) -> None:
        """A mark came back: the caller heard the audio before it."""
        if heard.generation == self.pump.playout.generation:
            with contextlib.suppress(ValueError):
                self.pump.client_played(heard.played_ms, self.clock.monotonic())

    # --- the pump's sink -------------------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        """One paced batch: cut at segment ends, each piece as media + a mark."""
        if self.call.state is not CallState.STREAMING:
            return
        generation = self.pump.playout.generation
        offset = 0
        while offset < len(pcm):
            if self._segments:
                segment = self._segments[0]
                take = min(segment.remaining, len(pcm) - offset)
                segment.remaining -= take
                text = segment.text if segment.remaining <= 0 else ""
                if segment.remaining <= 0:
                    self._segments.popleft()
            else:  # bookkeeping lost track (never expected): send it untagged
                take, text = len(pcm) - offset, ""
            piece = pcm[offset : offset + take]
            offset += take
            self._post(self.call.speak(piece, self.rate, text, generation))

    # --- the writer ------------------------------------------------------------------------

    def _post(self, sends: list[Send]) -> None:
        for item in sends:
            self._outbox.put_nowait(item.text)

    async def _write(self) -> None:
        while True:
            text = await self._outbox.get()
            await self._send(text)
            self.sent_messages += 1
