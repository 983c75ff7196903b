"""One reconnecting WebSocket upstream, shared by every speech-to-speech adapter.

Theory of operation. A :class:`Dialect` knows one provider's URL, headers and wire codec;
:class:`UpstreamSession` owns the sockets. ``connect`` opens a socket, sends the dialect's
setup, waits for its ready event, seeds history, and starts a reader that decodes server
messages into :mod:`parley.s2s.base` events on one queue, which ``events()`` yields.

Swapping connections. On ``GoAway`` (Gemini's ``goAway``; OpenAI's ``session_expired``)
or an unexpected drop, the session *swaps*: caller audio sent meanwhile is buffered, a new
socket is opened with the last resumption handle (Gemini), and if that is refused or there
is no handle, a fresh session is seeded with the history (the seeded turns plus every final
transcript and typed text seen since). Then the buffered audio is flushed in order to the
new socket before it becomes current, so no caller audio is lost. The old socket keeps
being read until it finishes its answer (``TurnComplete``) or the server closes it; a
socket that ends in the middle of an answer yields a ``TurnComplete`` for it (abandoned).

Errors. Opening a socket is retried with backoff (injected ``sleep``) when the failure may
pass (refused, reset, HTTP 429/5xx); an authentication or setup rejection is not retried.
When no socket can be opened, an :class:`UpstreamError` with ``retryable=False`` is the
last event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from parley.s2s.base import (
    AudioOut,
    Capabilities,
    GoAway,
    HistoryTurn,
    InputTranscript,
    OutputTranscript,
    ResumptionHandle,
    S2SConfig,
    S2SEvent,
    ToolCall,
    TurnComplete,
    UpstreamError,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
DEFAULT_BACKOFF = (0.5, 1.0, 2.0)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Decoder(Protocol):
    def decode(self, text: str | bytes) -> Sequence[object]: ...


class Dialect(Protocol):
    """What differs between providers; everything here is pure except ``url``/``headers``."""

    capabilities: Capabilities

    def url(self, config: S2SConfig) -> str: ...

    def headers(self) -> dict[str, str]: ...

    def new_decoder(self) -> Decoder: ...

    def is_ready(self, event: object) -> bool: ...

    def setup(self, config: S2SConfig, handle: str | None) -> list[str]: ...

    def seed(self, history: Sequence[HistoryTurn]) -> list[str]: ...

    def audio(self, pcm16k: bytes) -> list[str]: ...

    def text(self, text: str) -> list[str]: ...

    def tool_result(self, call_id: str, name: str, result: Mapping[str, Any]) -> list[str]: ...

    def truncate(self, item_id: str, audio_end_ms: int) -> list[str]: ...


class _OpenFailed(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


_END = object()


class UpstreamSession:
    """A :class:`~parley.s2s.base.SpeechToSpeech` over any :class:`Dialect`."""

    def __init__(
        self,
        dialect: Dialect,
        *,
        sleep: Sleep | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        setup_timeout_s: float = 15.0,
    ) -> None:
        self.dialect = dialect
        self.capabilities = dialect.capabilities
        self._sleep: Sleep = sleep or asyncio.sleep
        self._backoff = tuple(backoff)
        self._setup_timeout_s = setup_timeout_s
        self._config = S2SConfig()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._sockets: set[ClientConnection] = set()
        self._decoders: dict[ClientConnection, Decoder] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._swap: asyncio.Task[None] | None = None
        self._pending_audio: list[str] = []  # encoded audio messages held during a swap
        self._handle: str | None = None
        self._history: list[HistoryTurn] = []
        self._tool_names: dict[str, str] = {}
        self._closed = False
        self.swaps = 0  # connections swapped in after the first (resumed or rebuilt)
        self.rebuilds = 0  # of those, sessions rebuilt from history

    @property
    def history(self) -> list[HistoryTurn]:
        """Seeded turns plus the final transcripts and typed text seen since."""
        return list(self._history)

    # --- the SpeechToSpeech surface -------------------------------------------------

    async def connect(self, config: S2SConfig) -> None:
        self._config = config
        self._history = list(config.history)
        try:
            ws = await self._open_with_retry(handle=None)
        except _OpenFailed as exc:
            self._fail(str(exc))
            return
        self._install(ws)

    async def events(self) -> AsyncIterator[S2SEvent]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            yield item  # type: ignore[misc]

    async def send_audio(self, pcm16k: bytes) -> None:
        messages = self.dialect.audio(pcm16k)  # encoded once: a resampler keeps state
        ws = self._ws
        if self._swap is not None or ws is None:
            self._pending_audio.extend(messages)
            return
        for index, message in enumerate(messages):
            try:
                await ws.send(message)
            except ConnectionClosed:
                # The socket died under us: keep what did not go out for the next socket.
                self._pending_audio.extend(messages[index:])
                if ws is self._ws and self._swap is None and not self._closed:
                    log.info("upstream closed while sending audio; reconnecting")
                    self._start_swap()
                return

    async def send_text(self, text: str) -> None:
        self._history.append(HistoryTurn("user", text))
        await self._send_current(self.dialect.text(text))

    async def send_tool_result(self, call_id: str, result: Mapping[str, Any]) -> None:
        name = self._tool_names.pop(call_id, "")
        await self._send_current(self.dialect.tool_result(call_id, name, result))

    async def truncate(self, item_id: str, audio_end_ms: int) -> None:
        if self.capabilities.truncate:
            await self._send_current(self.dialect.truncate(item_id, audio_end_ms))

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._tasks, *([self._swap] if self._swap is not None else [])]
        for task in tasks:
            task.cancel()
        for ws in list(self._sockets):
            await ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._queue.put_nowait(_END)

    # --- sockets ----------------------------------------------------------------------

    async def _send_current(self, messages: list[str]) -> None:
        if self._swap is not None:
            await asyncio.shield(self._swap)
        if self._ws is not None:
            await self._send(self._ws, messages)

    async def _send(self, ws: ClientConnection, messages: list[str]) -> None:
        try:
            for message in messages:
                await ws.send(message)
        except ConnectionClosed:
            log.info("upstream closed while sending; the reader will reconnect")

    async def _open_with_retry(self, handle: str | None) -> ClientConnection:
        delays = iter(self._backoff)
        while True:
            try:
                return await self._open(handle)
            except _OpenFailed as exc:
                delay = next(delays, None)
                if not exc.retryable or delay is None or self._closed:
                    raise
                log.warning("upstream open failed (%s); retrying in %.1fs", exc, delay)
                await self._sleep(delay)

    async def _open(self, handle: str | None) -> ClientConnection:
        url = self.dialect.url(self._config)
        try:
            ws = await connect(url, additional_headers=self.dialect.headers(), max_size=None)
        except InvalidStatus as exc:
            status = exc.response.status_code
            retryable = status in RETRYABLE_STATUS
            raise _OpenFailed(f"upstream refused: HTTP {status}", retryable) from None
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise _OpenFailed(f"upstream unreachable: {exc}", retryable=True) from None
        decoder = self.dialect.new_decoder()
        try:
            async with asyncio.timeout(self._setup_timeout_s):
                await self._send(ws, self.dialect.setup(self._config, handle))
                async for message in ws:
                    events = decoder.decode(message)
                    if any(self.dialect.is_ready(e) for e in events):
                        break
                    for event in events:
                        if isinstance(event, UpstreamError):
                            raise _OpenFailed(f"setup rejected: {event.message}", False)
                else:
                    raise _OpenFailed(f"setup rejected: {_close_reason(ws)}", retryable=False)
        except TimeoutError:
            await ws.close()
            raise _OpenFailed("setup timed out", retryable=True) from None
        except ConnectionClosed:
            raise _OpenFailed(f"setup rejected: {_close_reason(ws)}", retryable=False) from None
        except _OpenFailed:
            await ws.close()
            raise
        if handle is None and self._history:
            await self._send(ws, self.dialect.seed(self._history))
        self._decoders[ws] = decoder
        return ws

    def _install(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._sockets.add(ws)
        task = asyncio.create_task(self._read(ws))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail(self, message: str) -> None:
        self._queue.put_nowait(UpstreamError(message, retryable=False))
        self._queue.put_nowait(_END)

    async def _read(self, ws: ClientConnection) -> None:
        decoder = self._decoders.pop(ws)
        answering = False  # the model's answer on this socket has begun and not ended
        try:
            async for message in ws:
                for event in decoder.decode(message):
                    self._observe(event, current=ws is self._ws)
                    self._queue.put_nowait(event)
                    if isinstance(event, AudioOut | OutputTranscript):
                        answering = True
                    elif isinstance(event, TurnComplete):
                        answering = False
                        if ws is not self._ws:
                            await ws.close()  # a swapped-out socket has finished its answer
        except ConnectionClosed:
            pass
        except ValueError as exc:  # a wire codec error: the provider broke the protocol
            log.warning("upstream sent a bad message: %s", exc)
            await ws.close()
        finally:
            self._sockets.discard(ws)
            if answering and not self._closed:
                # the socket ended mid-answer (session expired, dropped): the answer is
                # abandoned, so consumers waiting for its end are not left waiting
                self._queue.put_nowait(TurnComplete())
        if ws is self._ws and not self._closed and self._swap is None:
            log.info("upstream dropped (%s); reconnecting", _close_reason(ws))
            self._start_swap()

    def _observe(self, event: object, current: bool) -> None:
        if isinstance(event, ResumptionHandle):
            if current:
                self._handle = event.handle
        elif isinstance(event, InputTranscript) and event.final and event.text:
            self._history.append(HistoryTurn("user", event.text))
        elif isinstance(event, OutputTranscript) and event.final and event.text:
            self._history.append(HistoryTurn("assistant", event.text))
        elif isinstance(event, ToolCall):
            self._tool_names[event.call_id] = event.name
        elif isinstance(event, GoAway) and current and self._swap is None and not self._closed:
            self._start_swap()

    def _start_swap(self) -> None:
        self._swap = asyncio.create_task(self._swap_in())

    async def _swap_in(self) -> None:
        ws: ClientConnection | None = None
        try:
            if self._handle is not None and self.capabilities.resumable:
                try:
                    ws = await self._open_with_retry(self._handle)
                except _OpenFailed as exc:
                    log.warning("resumption failed (%s); rebuilding from history", exc)
                    self._handle = None
            if ws is None:
                self._handle = None
                ws = await self._open_with_retry(handle=None)
                self.rebuilds += 1
        except _OpenFailed as exc:
            self._swap = None
            self._fail(f"upstream lost and could not reconnect: {exc}")
            return
        with contextlib.suppress(ConnectionClosed):  # kept for the next socket if this dies
            while self._pending_audio:
                await ws.send(self._pending_audio[0])
                self._pending_audio.pop(0)
        self.swaps += 1
        self._swap = None
        self._install(ws)


def _close_reason(ws: ClientConnection) -> str:
    if ws.close_code is None:
        return "closed"
    return f"close code {ws.close_code} {ws.close_reason}".strip()
