"""Warm transfer with a phone caller: setup time and bridged-audio latency, rate-converting.

One in-process server (SQLite, in-process coordinator, fake engines, rules brain) and the
local Twilio REST server (``parley.testing.fake_twilio``). The caller is a simulated
Twilio media stream (μ-law 8 kHz) that presses a key to ask for a person. The human is
either (``--human phone``) the number the agent's ``transfer_to`` names — Parley asks the
fake REST server to call it; the simulated person picks up as soon as the call exists and
presses 1 as soon as the briefing starts — or (``--human console``) a console voice leg at
48 kHz that accepts as soon as the caller hears ``dialing``.

**Setup**: the caller's key press → ``joined`` published. **Added latency** per
direction: both legs stream 20 ms frames in real time (silence), each with a 100 ms
tone burst once a second (offset by half a second between the legs); latency is the
arrival of the first frame that carries a burst plus the burst's position inside that
frame, minus the send time of the burst's first frame (the audio's own delay when frames
are played as they arrive). It includes everything on the path: two socket hops, μ-law,
the rate changes (8 ⇄ 16 kHz, or 8 ⇄ 48 kHz) and the pacing of the senders, which share
this process and its event loop with the server.

Usage: ``.venv/bin/python bench/transfer_phone.py [--human phone|console]
[--transfers 10] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import websockets

from parley.app import create_app
from parley.audio.g711 import decode_ulaw, encode_ulaw
from parley.config import Settings
from parley.testing.fake_twilio import FakeTwilio
from parley.testing.phone_peer import PhonePeer
from parley.testing.servers import serve_app

KEY = "bench-operator"
PUBLIC = "https://parley.example.com"
ACCOUNT, TOKEN = "AC" + "1" * 32, "f" * 32
HUMAN = "+15550009999"
AGENT = """
name: {name}
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {{stt: fake, tts: fake, vad: fake_energy}}
voice: {{false_interruption_secs: 0, turn_detection: silence}}
{target}
tools:
  - name: transfer_to_human
rules:
  - intent: human
    keywords: [pressed]
    tool: transfer_to_human
"""
THRESHOLD = 3000  # |int16| of a sample that belongs to the burst (amplitude ~9800)


def burst(rate: int, freq: float) -> bytes:
    t = np.arange(rate // 10) / rate  # 100 ms
    return (np.sin(2 * np.pi * freq * t) * 0.3 * 32767).astype("<i2").tobytes()


def onset_s(pcm: bytes, rate: int) -> float | None:
    """Where in a received frame the burst starts (seconds into the frame), or None."""
    x = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    hits = np.flatnonzero(x > THRESHOLD)
    return float(hits[0]) / rate if hits.size else None


class Stamped(list[Any]):
    """The phone peer's ``received``, with the arrival time of every message."""

    def append(self, item: Any) -> None:
        super().append((time.perf_counter(), item))


def stream_of(base: str, answer: Any) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(answer.text).find("./Connect/Stream")
    assert stream is not None, answer.text
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return base.replace("http", "ws", 1) + urlsplit(stream.attrib["url"]).path, params


def phone_arrivals(peer: PhonePeer) -> list[tuple[float, float | None]]:
    import base64

    return [
        (t, onset_s(decode_ulaw(base64.b64decode(m["media"]["payload"])), 8000))
        for t, m in peer.received
        if m.get("event") == "media"
    ]


async def paced(
    send: Any, silence: bytes, tone: bytes, offset_s: float, seconds: float, sent: list[float]
) -> None:
    """20 ms frames in real time; a 100 ms burst each second from ``offset_s``; the send
    time of every burst's first frame is kept."""
    size = len(silence)
    burst_frames = len(tone) // size
    offset = round(offset_s * 50)
    start = time.perf_counter()
    for n in range(int(seconds * 50)):
        delay = start + n * 0.02 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        k = (n - offset) % 50
        if k < burst_frames:
            if k == 0:
                sent.append(time.perf_counter())
            await send(tone[k * size : (k + 1) * size])
        else:
            await send(silence)


async def placed(twilio: FakeTwilio) -> str:
    """The queued call to the human's number (the fake REST server has no event to await)."""
    while True:
        calls = [s for s, c in twilio.calls.items() if c.to == HUMAN and c.status == "queued"]
        if calls:
            return calls[0]
        await asyncio.sleep(0.001)


def latencies(sent: list[float], arrivals: list[tuple[float, float | None]]) -> list[float]:
    """Per burst: (arrival of the first frame that carries it + the burst's position in
    that frame) − the send time of its first frame, i.e. the audio's own delay when the
    receiver plays frames as they arrive."""
    out = []
    for t0 in sent:
        hit = next((t + at for t, at in arrivals if t >= t0 and at is not None), None)
        if hit is not None and hit - t0 < 0.5:
            out.append(hit - t0)
    return out


async def one_transfer(
    base: str, twilio: FakeTwilio, app: Any, human_kind: str, seconds: float
) -> tuple[float, list[float], list[float]]:
    agent = "line" if human_kind == "phone" else "desk"
    sid, answer = await twilio.incoming(
        f"{PUBLIC}/v1/telephony/twilio/voice?agent={agent}", "+15550001111", "+15550002222"
    )
    url, params = stream_of(base, answer)
    async with PhonePeer.dial(url, parameters=params, call_id=sid) as caller:
        caller.received = Stamped()
        await caller.wait_for(lambda p: p.marks_sent)  # the greeting
        session_id = str(await app.state.services.coordinator.get(f"phone:call-session:{sid}"))
        events = await app.state.services.lifecycle.subscribe(session_id)
        try:
            started = time.perf_counter()
            await caller.press("0")
            async with contextlib.AsyncExitStack() as stack:
                if human_kind == "phone":
                    human_sid = await placed(twilio)
                    hurl, hparams = stream_of(base, await twilio.answer(human_sid))
                    human = await stack.enter_async_context(
                        PhonePeer.dial(hurl, parameters=hparams, call_id=human_sid)
                    )
                    human.received = Stamped()
                    await human.wait_for(lambda p: len(p.received) > 0)  # the briefing
                    await human.press("1")
                    h_rate, h_frame = 8000, 160

                    async def human_send(pcm: bytes) -> None:
                        await human.send(human.dialect.media(0, 0, encode_ulaw(pcm)))

                    def human_arrivals() -> list[tuple[float, float | None]]:
                        return phone_arrivals(human)
                else:
                    dialing = await anext(
                        m
                        async for m in events
                        if m.get("type") == "transfer" and m.get("status") == "dialing"
                    )
                    ws = await stack.enter_async_context(
                        websockets.connect(base.replace("http", "ws", 1) + "/v1/voice")
                    )
                    start = {
                        "type": "start",
                        "transfer_id": dialing["transfer_id"],
                        "operator_key": KEY,
                        "sample_rate": 48000,
                        "output_sample_rate": 48000,
                    }
                    await ws.send(json.dumps(start))
                    got: list[tuple[float, float | None]] = []

                    async def read() -> None:
                        async for msg in ws:
                            if isinstance(msg, bytes):
                                got.append((time.perf_counter(), onset_s(msg, 48000)))

                    reader = asyncio.create_task(read())
                    stack.callback(reader.cancel)
                    h_rate, h_frame = 48000, 960

                    async def human_send(pcm: bytes) -> None:
                        await ws.send(pcm)

                    def human_arrivals() -> list[tuple[float, float | None]]:
                        return got

                async def caller_send(pcm: bytes) -> None:
                    await caller.send(caller.dialect.media(0, 0, encode_ulaw(pcm)))

                up_sent: list[float] = []
                down_sent: list[float] = []

                async def joined() -> float:
                    async for m in events:
                        if m.get("type") == "transfer" and m.get("status") == "joined":
                            return time.perf_counter()
                    return float("nan")

                joined_task = asyncio.create_task(joined())
                await asyncio.gather(
                    paced(caller_send, b"\x00" * 320, burst(8000, 1000), 0.0, seconds, up_sent),
                    paced(
                        human_send,
                        b"\x00" * 2 * h_frame,
                        burst(h_rate, 600),
                        0.5,
                        seconds,
                        down_sent,
                    ),
                )
                setup = await asyncio.wait_for(joined_task, 5) - started
                joined_at = started + setup
                up = latencies([t for t in up_sent if t > joined_at], human_arrivals())
                down = latencies([t for t in down_sent if t > joined_at], phone_arrivals(caller))
            await caller.hang_up()
        finally:
            await events.close()
    return setup, up, down


def describe(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return f"| {name} | – | – | 0 |"
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"| {name} | {statistics.median(ms):.1f} | {p95:.1f} | {len(ms)} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--human", choices=["phone", "console"], default="phone")
    parser.add_argument("--transfers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per transfer")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        (agents / "line.yaml").write_text(
            AGENT.format(name="line", target=f'transfer_to: "{HUMAN}"')
        )
        (agents / "desk.yaml").write_text(AGENT.format(name="desk", target=""))
        async with FakeTwilio(ACCOUNT, TOKEN) as twilio:
            settings = Settings(
                data_dir=Path(tmp) / "data",
                database_url=f"sqlite:///{tmp}/bench.db",
                agents_dir=agents,
                operator_key=KEY,
                public_url=PUBLIC,
                twilio_account_sid=ACCOUNT,
                twilio_auth_token=TOKEN,
                twilio_from="+15559990000",
                twilio_api_base=twilio.base_url,
            )
            app = create_app(settings)
            async with serve_app(app) as base:
                twilio.tunnel = (PUBLIC, base)
                setups, ups, downs = [], [], []
                for _ in range(args.transfers):
                    setup, up, down = await one_transfer(
                        base, twilio, app, args.human, args.seconds
                    )
                    setups.append(setup)
                    ups += up
                    downs += down
    human = "phone (8 kHz μ-law)" if args.human == "phone" else "console (48 kHz PCM16)"
    print(f"caller: phone (8 kHz μ-law); human: {human}")
    print("| measure | median ms | p95 ms | samples |")
    print("|---|---|---|---|")
    print(describe("setup: key pressed → joined", setups))
    print(describe("caller → human, burst onset", ups))
    print(describe("human → caller, burst onset", downs))


if __name__ == "__main__":
    asyncio.run(main())
