"""WebSocket routes served straight on ASGI, outside the web framework's layers.

A voice connection exchanges ~100 messages a second. Through FastAPI/Starlette each
one also passes the exception middleware's ``send`` wrapper, the route's wrapper
and ``WebSocket``'s state checks. ``ParleyApp`` (a ``FastAPI``) hands WebSocket
scopes whose path is in ``raw_websockets`` to a handler taking a ``RawWebSocket``:
the few operations the voice channel needs, one ASGI call each. Everything else
(HTTP, other WebSockets, lifespan) goes through FastAPI as usual.

Errors keep Starlette's shapes so handlers read the same: a send to a client that
has gone raises ``WebSocketDisconnect``; a send after ``close`` raises ``RuntimeError``
(from the server).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, WebSocketDisconnect
from starlette.types import Receive, Scope, Send

Message = dict[str, Any]


class RawWebSocket:
    """One accepted-or-not WebSocket on plain ASGI ``receive`` / ``send``."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        client = scope.get("client")
        self.client_host: str = client[0] if client else "unknown"
        self.disconnected = False  # the client left (a disconnect message was received)
        self.close_sent = False

    @property
    def open(self) -> bool:
        return not (self.disconnected or self.close_sent)

    async def accept(self, subprotocol: str | None = None) -> None:
        message = await self._receive()
        if message["type"] != "websocket.connect":
            self.disconnected = True
            raise WebSocketDisconnect(1006)
        accept: Message = {"type": "websocket.accept"}
        if subprotocol is not None:
            accept["subprotocol"] = subprotocol
        await self._send(accept)

    async def deny(self) -> None:
        """Refuse the upgrade: the client gets HTTP 403 and no WebSocket."""
        message = await self._receive()
        self.close_sent = True
        if message["type"] == "websocket.connect":
            await self._send({"type": "websocket.close", "code": 1008})
        else:
            self.disconnected = True

    async def receive(self) -> Message:
        """The next ASGI message: ``websocket.receive`` (``bytes`` or ``text``) or
        ``websocket.disconnect``."""
        message: Message = await self._receive()  # type: ignore[assignment]
        if message["type"] == "websocket.disconnect":
            self.disconnected = True
        return message

    async def send_text(self, text: str) -> None:
        await self._send_message({"type": "websocket.send", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self._send_message({"type": "websocket.send", "bytes": data})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.open:
            self.close_sent = True
            await self._send_message({"type": "websocket.close", "code": code, "reason": reason})

    async def _send_message(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError:  # uvicorn's ClientDisconnected: the client has gone
            self.disconnected = True
            raise WebSocketDisconnect(1006) from None


RawHandler = Callable[[RawWebSocket], Awaitable[None]]


class ParleyApp(FastAPI):
    """FastAPI plus raw WebSocket routes (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raw_websockets: dict[str, RawHandler] = {}

    def raw_websocket(self, path: str, handler: RawHandler) -> None:
        self.raw_websockets[path] = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            handler = self.raw_websockets.get(scope["path"])
            if handler is not None:
                await handler(RawWebSocket(scope, receive, send))
                return
        await super().__call__(scope, receive, send)
