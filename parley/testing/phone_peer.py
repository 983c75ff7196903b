"""A simulated carrier for tests: it dials a media-stream WebSocket and speaks the
carrier's documented messages (Twilio Media Streams or Telnyx media streaming).

The peer sends ``connected`` and ``start`` (with custom parameters), then caller audio
as μ-law 8 kHz ``media`` messages of 20 ms, ``dtmf`` keys and finally ``stop``. It
collects what the server sends back (``media``, ``mark``, ``clear``) and plays it like
the carrier does, on a clock the test moves (``play``): audio queued before a mark is
played first, then the mark is echoed; a ``clear`` drops the queue and echoes every
pending mark at once (audio that was never played). Nothing sleeps::

    async with PhonePeer.dial(url, dialect=TWILIO, parameters={"token": t}) as peer:
        await peer.say(pcm16k)          # 20 ms messages, unpaced
        await peer.wait_for(lambda p: p.marks_sent)  # the server spoke
        echoed = await peer.play(1.0)   # one second of the caller listening
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from parley.audio.g711 import encode_ulaw
from parley.audio.resample import resample

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
BYTES_PER_S = 8000


@dataclass(frozen=True)
class Dialect:
    """How one carrier spells its messages (the peer's side of a codec)."""

    name: str
    stream_key: str  # "streamSid" | "stream_id"
    sequence_key: str  # "sequenceNumber" | "sequence_number"

    def connected(self) -> dict[str, Any]:
        if self.name == "twilio":
            return {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        return {"event": "connected", "version": "1.0.0"}

    def start(self, stream_id: str, call_id: str, parameters: Mapping[str, str]) -> dict[str, Any]:
        if self.name == "twilio":
            body: dict[str, Any] = {
                "accountSid": "AC" + "0" * 32,
                "streamSid": stream_id,
                "callSid": call_id,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": dict(parameters),
            }
        else:
            body = {
                "user_id": "00000000-0000-0000-0000-000000000000",
                "call_control_id": call_id,
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
                "custom_parameters": dict(parameters),
            }
        return {"event": "start", "start": body}

    def media(self, chunk: int, timestamp_ms: int, payload: bytes) -> dict[str, Any]:
        media = {
            "track": "inbound",
            "chunk": str(chunk),
            "timestamp": str(timestamp_ms),
            "payload": base64.b64encode(payload).decode(),
        }
        return {"event": "media", "media": media}

    def dtmf(self, digit: str) -> dict[str, Any]:
        if self.name == "twilio":
            return {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}}
        return {"event": "dtmf", "dtmf": {"digit": digit}}

    def mark(self, name: str) -> dict[str, Any]:
        return {"event": "mark", "mark": {"name": name}}

    def stop(self, call_id: str) -> dict[str, Any]:
        if self.name == "twilio":
            return {"event": "stop", "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_id}}
        return {"event": "stop", "stop": {"call_control_id": call_id}}


TWILIO = Dialect("twilio", "streamSid", "sequenceNumber")
TELNYX = Dialect("telnyx", "stream_id", "sequence_number")


@dataclass
class _Queued:
    audio: bytearray  # μ-law still to play before the mark
    mark: str


@dataclass
class PhonePeer:
    """One simulated call on an open socket; see the module docstring."""

    ws: ClientConnection
    dialect: Dialect
    stream_id: str = "MZ" + "1" * 32
    call_id: str = "CA" + "2" * 32
    received: list[dict[str, Any]] = field(default_factory=list)
    heard_audio: bytearray = field(default_factory=bytearray)  # played μ-law
    marks_sent: list[str] = field(default_factory=list)  # marks the server sent
    marks_played: list[str] = field(default_factory=list)  # echoed after playing
    marks_dropped: list[str] = field(default_factory=list)  # echoed after a clear
    clears: int = 0
    closed: bool = False  # the server closed the socket
    _queue: list[_Queued] = field(default_factory=list)
    _pending: bytearray = field(default_factory=bytearray)  # audio of the open queue item
    _sequence: int = 0
    _chunk: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def dial(
        cls,
        url: str,
        *,
        dialect: Dialect = TWILIO,
        parameters: Mapping[str, str] | None = None,
        call_id: str | None = None,
    ) -> AsyncIterator[PhonePeer]:
        async with connect(url, max_size=1 << 20) as ws:
            peer = cls(ws, dialect)
            if call_id:
                peer.call_id = call_id
            peer._reader = asyncio.create_task(peer._read())
            await peer.send(dialect.connected(), numbered=False)
            await peer.send(dialect.start(peer.stream_id, peer.call_id, parameters or {}))
            try:
                yield peer
            finally:
                peer._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await peer._reader

    # --- caller → server ---------------------------------------------------------------

    async def send(self, message: dict[str, Any], *, numbered: bool = True) -> None:
        if numbered:
            self._sequence += 1
            message = {
                **message,
                self.dialect.sequence_key: str(self._sequence),
                self.dialect.stream_key: self.stream_id,
            }
        await self.ws.send(json.dumps(message))

    async def say(self, pcm: bytes, sample_rate: int = 16000) -> None:
        """Caller speech (PCM16) as 20 ms μ-law media messages, as fast as they go."""
        ulaw = encode_ulaw(resample(pcm, sample_rate, 8000))
        for i in range(0, len(ulaw), FRAME_BYTES):
            self._chunk += 1
            timestamp = self._chunk * 20
            await self.send(self.dialect.media(self._chunk, timestamp, ulaw[i : i + FRAME_BYTES]))

    async def press(self, digit: str) -> None:
        await self.send(self.dialect.dtmf(digit))

    async def hang_up(self) -> None:
        await self.send(self.dialect.stop(self.call_id))

    # --- server → caller ---------------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        """μ-law received and not yet played (before a mark)."""
        return sum(len(item.audio) for item in self._queue)

    async def _read(self) -> None:
        try:
            with contextlib.suppress(ConnectionClosed):
                await self._read_messages()
        finally:
            self.closed = True
            self._changed.set()

    async def _read_messages(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            self.received.append(message)
            event = message.get("event")
            if event == "media":
                self._pending += base64.b64decode(message["media"]["payload"])
            elif event == "mark":
                name = message["mark"]["name"]
                self.marks_sent.append(name)
                self._queue.append(_Queued(bytearray(self._pending), name))
                self._pending.clear()
            elif event == "clear":
                self.clears += 1
                self._pending.clear()
                for item in self._queue:  # the carrier echoes marks it will never play
                    self.marks_dropped.append(item.mark)
                    await self.send(self.dialect.mark(item.mark))
                self._queue.clear()
            self._changed.set()

    async def wait_for(self, condition: Callable[[PhonePeer], Any], within_s: float = 10.0) -> None:
        """Until ``condition(self)`` holds (wakes on every message from the server)."""
        async with asyncio.timeout(within_s):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    async def play(self, seconds: float) -> list[str]:
        """Let the caller listen for ``seconds``: play queued audio, echo reached marks."""
        budget = int(seconds * BYTES_PER_S)
        echoed: list[str] = []
        while self._queue and budget >= 0:
            item = self._queue[0]
            step = min(len(item.audio), budget)
            self.heard_audio += item.audio[:step]
            del item.audio[:step]
            budget -= step
            if item.audio:
                break
            self._queue.pop(0)
            self.marks_played.append(item.mark)
            echoed.append(item.mark)
            await self.send(self.dialect.mark(item.mark))
        return echoed
