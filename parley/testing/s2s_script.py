"""What the fake speech-to-speech servers share: the reply script and the server plumbing.

A fake server answers each caller turn with the next :class:`Reply` of its script. A turn
is the caller's audio reaching ``bytes_per_turn`` on one connection (the fake's "server
VAD"), a typed text turn, or a tool result (which the next reply answers).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from parley.s2s.base import InputTranscript, OutputTranscript, S2SEvent


class RecordingSleep:
    """An injected ``sleep`` that returns at once and records the delays asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)


async def events_until(
    events: AsyncIterator[S2SEvent], done: Callable[[S2SEvent], bool], limit_s: float = 10.0
) -> list[S2SEvent]:
    """Collect events up to and including the first for which ``done`` is true.

    ``limit_s`` is a safety net against a hung test (it raises TimeoutError), not a wait.
    """
    seen: list[S2SEvent] = []
    async with asyncio.timeout(limit_s):
        async for event in events:
            seen.append(event)
            if done(event):
                return seen
    return seen


def final_texts(
    events: list[S2SEvent], kind: type[InputTranscript] | type[OutputTranscript]
) -> list[str]:
    """The texts of the final transcripts of one kind."""
    return [e.text for e in events if isinstance(e, kind) and e.final]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``heard`` is how the fake transcribes the caller's turn."""

    heard: str = ""
    says: str = "Hello there."
    chunks: int = 3
    chunk_bytes: int = 960  # 20 ms of 24 kHz PCM16
    tool_call: tuple[str, Mapping[str, Any]] | None = None
    go_away_after: int | None = None  # chunk index after which goAway / session end comes
    interrupt_after: int | None = None  # chunk index after which barge-in is signalled
    drop_after: int | None = None  # chunk index after which the socket dies (close 1011)

    def pieces(self) -> list[str]:
        """The output transcript split over the chunks."""
        words = self.says.split(" ")
        step = max(1, -(-len(words) // max(1, self.chunks)))
        parts = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
        parts += [""] * (self.chunks - len(parts))
        return [p + (" " if i < len(parts) - 1 and p else "") for i, p in enumerate(parts)]

    def audio(self, index: int) -> str:
        chunk = bytes([index % 256]) * self.chunk_bytes
        return base64.b64encode(chunk).decode("ascii")


@dataclass
class Connection:
    """What the fake saw on one upstream connection."""

    setup: dict[str, Any] = field(default_factory=dict)
    audio_bytes: int = 0
    turn_bytes: int = 0
    seeded: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    texts: list[str] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    truncates: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""
    audio_times: list[float] = field(
        default_factory=list
    )  # monotonic arrival of each audio message


class FakeServerBase:
    """A real WebSocket server on 127.0.0.1 that plays a script of replies."""

    def __init__(self, script: list[Reply] | None = None, *, bytes_per_turn: int = 3200) -> None:
        self.script: list[Reply] = list(script or [])
        self.bytes_per_turn = bytes_per_turn
        self.connections: list[Connection] = []
        self.refuse: list[int] = []  # HTTP statuses for the next handshakes, in order
        self.reply_delay_s = 0.0  # a model's thinking time before each reply (benchmarks)
        self._server: Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def audio_bytes(self) -> int:
        return sum(c.audio_bytes for c in self.connections)

    async def think(self) -> None:
        """Wait ``reply_delay_s`` before answering (a real model's time to first audio)."""
        if self.reply_delay_s > 0:
            await asyncio.sleep(self.reply_delay_s)

    def next_reply(self) -> Reply:
        return self.script.pop(0) if self.script else Reply()

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.refuse:
            status = HTTPStatus(self.refuse.pop(0))
            return conn.respond(status, f"{status.phrase}\n")
        return None

    async def handle(self, ws: ServerConnection, record: Connection) -> None:
        raise NotImplementedError

    async def _handler(self, ws: ServerConnection) -> None:
        record = Connection(path=ws.request.path if ws.request else "")
        if ws.request:
            record.headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        self.connections.append(record)
        with contextlib.suppress(ConnectionClosed):
            await self.handle(ws, record)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeServerBase]:
        async with serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request, max_size=None
        ) as server:
            self._server = server
            self.port = next(iter(server.sockets)).getsockname()[1]
            yield self
