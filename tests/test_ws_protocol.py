"""The watermark WebSocket protocol: reading pauses at HIGH_WATER queued messages only,
and resumes once the application has drained the queue; messages are never lost."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import WebSocketDisconnect

from parley.channels.ws_protocol import HIGH_WATER, WatermarkWSProtocol


class Transport:
    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0

    def pause_reading(self) -> None:
        self.pauses += 1

    def resume_reading(self) -> None:
        self.resumes += 1


def protocol() -> tuple[WatermarkWSProtocol, Transport]:
    # Only the receive-side state the two methods under test use.
    proto = WatermarkWSProtocol.__new__(WatermarkWSProtocol)
    transport = Transport()
    proto.transport = transport  # type: ignore[assignment]
    proto.queue = asyncio.Queue()
    proto.read_paused = False
    proto.close_sent = False
    proto.frames = []
    return proto, transport


def arrive(proto: WatermarkWSProtocol, data: bytes) -> None:
    proto.curr_msg_data_type = "bytes"
    proto.frames = [data]
    proto.send_receive_event_to_app()


async def test_reading_pauses_only_at_the_high_water_mark_and_nothing_is_lost() -> None:
    proto, transport = protocol()
    for i in range(HIGH_WATER - 1):
        arrive(proto, bytes([i]))
    assert (transport.pauses, proto.read_paused) == (0, False)  # a frame at a time: no pause
    arrive(proto, b"last")
    assert (transport.pauses, proto.read_paused) == (1, True)
    received = [await proto.receive() for _ in range(HIGH_WATER)]
    assert transport.resumes == 1 and not proto.read_paused  # resumed once, when drained
    assert [m["bytes"] for m in received] == [bytes([i]) for i in range(HIGH_WATER - 1)] + [
        b"last"
    ]


async def test_a_reader_that_keeps_up_never_pauses() -> None:
    proto, transport = protocol()
    for i in range(3 * HIGH_WATER):
        arrive(proto, bytes([i % 256]))
        assert (await proto.receive())["bytes"] == bytes([i % 256])
    assert (transport.pauses, transport.resumes) == (0, 0)


async def test_text_messages_are_decoded() -> None:
    proto, _ = protocol()
    proto.curr_msg_data_type = "text"
    proto.frames = [b'{"type": "ping"}']
    proto.send_receive_event_to_app()
    assert await proto.receive() == {"type": "websocket.receive", "text": '{"type": "ping"}'}


async def test_raw_websocket_routes_and_everything_else_goes_through_fastapi() -> None:
    import websockets

    from parley.channels.raw_ws import ParleyApp, RawWebSocket
    from parley.testing.servers import serve_app

    app = ParleyApp()
    seen: list[Any] = []

    async def echo(ws: RawWebSocket) -> None:
        await ws.accept()
        message = await ws.receive()
        await ws.send_bytes(message["bytes"][::-1])
        await ws.send_text(ws.client_host)
        seen.append((await ws.receive())["type"])  # the client's close
        seen.append(ws.open)
        try:
            await ws.send_text("too late")
        except WebSocketDisconnect:
            seen.append("disconnect raised")

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hi": "there"}

    app.raw_websocket("/raw", echo)
    async with serve_app(app) as base:
        ws_base = base.replace("http://", "ws://")
        async with websockets.connect(f"{ws_base}/raw") as ws:
            await ws.send(b"abc")
            assert await ws.recv() == b"cba"
            assert await ws.recv() == "127.0.0.1"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/hello")).json() == {"hi": "there"}
        with pytest.raises(websockets.InvalidStatus):  # not a raw route: FastAPI answers
            async with websockets.connect(f"{ws_base}/other"):
                pass
    assert seen == ["websocket.disconnect", False, "disconnect raised"]
