"""The watermark WebSocket protocol: reading pauses at HIGH_WATER queued messages only,
and resumes once the application has drained the queue; messages are never lost."""

from __future__ import annotations

import asyncio

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
