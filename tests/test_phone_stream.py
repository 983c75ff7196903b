"""The phone stream's pure parts on a real WebSocket: a simulated carrier (Twilio or
Telnyx dialect) calls a small stream server built from ``PhoneCall`` and a codec.

The server stands in for the voice session: it collects caller audio, speaks three
sentences when the caller presses 1, and treats 9 as a barge-in. What the caller heard
is decided by the marks the carrier echoes, as the real loop will do it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from parley.telephony.call import (
    CallBegan,
    CallEnded,
    CallerAudio,
    CallerPressed,
    Heard,
    PhoneCall,
    Send,
)
from parley.telephony.telnyx_wire import TelnyxCodec
from parley.telephony.twilio_wire import TwilioCodec
from parley.telephony.wire import CarrierCodec, ProtocolError
from parley.testing.phone_peer import TELNYX, TWILIO, Dialect, PhonePeer

SENTENCES = ("Hello there.", "Your table is booked.", "See you soon.")


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 330 * t) * 6000).astype("<i2").tobytes()


@dataclass
class Bot:
    """What the stream loop will do, minus the voice session."""

    codec: CarrierCodec
    began: list[dict[str, str]] = field(default_factory=list)
    caller_pcm: bytearray = field(default_factory=bytearray)
    heard: list[Heard] = field(default_factory=list)
    cut: list[str] = field(default_factory=list)
    errors: list[ProtocolError] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, ws: ServerConnection) -> None:
        call = PhoneCall(self.codec)

        async def send(sends: list[Send]) -> None:
            for item in sends:
                await ws.send(item.text)

        async for message in ws:
            for action in call.receive(message):
                if isinstance(action, CallBegan):
                    self.began.append(dict(action.started.parameters))
                elif isinstance(action, CallerAudio):
                    self.caller_pcm += action.pcm
                elif isinstance(action, CallerPressed) and action.digit == "1":
                    for text in SENTENCES:
                        await send(call.speak(tone(0.5), 16000, text, generation=1))
                elif isinstance(action, CallerPressed) and action.digit == "9":
                    interruption = call.interrupt()
                    self.cut.append(interruption.heard_text)
                    await send(interruption.sends)
                elif isinstance(action, Heard):
                    self.heard.append(action)
                elif isinstance(action, ProtocolError):
                    self.errors.append(action)
                elif isinstance(action, CallEnded):
                    self.ended.append(action.reason)
                    self.done.set()


@contextlib.asynccontextmanager
async def stream_server(bot: Bot) -> AsyncIterator[str]:
    async with serve(bot.handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/stream"


@pytest.mark.parametrize(
    ("dialect", "codec"),
    [(TWILIO, TwilioCodec()), (TELNYX, TelnyxCodec())],
    ids=["twilio", "telnyx"],
)
async def test_marks_tell_the_server_what_the_caller_heard_and_clear_drops_the_rest(
    dialect: Dialect, codec: CarrierCodec
) -> None:
    bot = Bot(codec)
    async with stream_server(bot) as url:
        async with PhonePeer.dial(url, dialect=dialect, parameters={"agent": "demo"}) as peer:
            await peer.say(tone(1.0))  # one second of caller audio in 50 messages
            await peer.press("1")
            await peer.wait_for(lambda p: len(p.marks_sent) == 3)
            assert await peer.play(0.6) == ["1.1"]  # the first sentence (0.5 s) was heard
            await peer.press("9")  # barge-in during the second sentence
            await peer.wait_for(lambda p: p.clears == 1)
            assert peer.marks_dropped == ["1.2", "1.3"]
            await peer.hang_up()
            await asyncio.wait_for(bot.done.wait(), 10)
    assert bot.began == [{"agent": "demo"}]
    assert abs(len(bot.caller_pcm) / 32000 - 1.0) < 0.01  # 1 s at 16 kHz, nothing lost
    assert [h.text for h in bot.heard] == ["Hello there."]
    assert bot.cut == ["Hello there."]
    assert bot.errors == [] and bot.ended == ["stop"]
    assert len(peer.heard_audio) == 4800  # 0.6 s played: the first sentence + 0.1 s of the next


async def test_a_bad_message_from_the_carrier_is_counted_and_the_call_goes_on() -> None:
    bot = Bot(TwilioCodec())
    async with stream_server(bot) as url, PhonePeer.dial(url) as peer:
        await peer.ws.send("{not json")
        await peer.send({"event": "media", "media": {"payload": "***"}})
        await peer.press("1")
        await peer.wait_for(lambda p: len(p.marks_sent) == 3)
        await peer.hang_up()
        await asyncio.wait_for(bot.done.wait(), 10)
    assert [e.code for e in bot.errors] == ["malformed_json", "bad_base64"]
    assert bot.ended == ["stop"]
