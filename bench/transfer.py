"""Warm transfer to the web console: setup time and bridged-audio added latency.

One in-process server (SQLite, in-process coordinator, fake engines, rules brain). Per
transfer: a voice caller connects and types "human"; a console that accepts at once
joins as the human's ``/v1/voice`` leg as soon as the caller hears ``dialing``; both
send 20 ms frames until the caller hears ``joined``. **Setup** is the time from the
caller's "human" to its ``joined``. **Added latency** per direction: the time from a
20 ms frame sent by one leg to its (resampled) arrival on the other, over loopback
WebSockets — the bridge's cost plus two socket hops; frames are sent one at a time
(each waits for its echo), so queueing is not measured.

``--store postgres+redis`` runs on a fresh PostgreSQL database and the Redis
coordinator; ``--workers 2`` then starts two app instances (in this one process) and
puts the caller on the first, the console on the second, so each frame also crosses
Redis pub/sub (``parley.channels.bridge_relay``): the difference to ``--workers 1`` on
the same store is the relay's added latency. ``--codec`` also times the relay's frame
encoding (JSON + base64) alone.

Usage: ``.venv/bin/python bench/transfer.py [--transfers 20] [--frames 200]
[--store sqlite|postgres+redis] [--workers 1|2] [--codec]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from parley.app import create_app
from parley.channels.bridge_relay import audio_message, audio_of
from parley.config import Settings
from parley.testing.servers import serve_app

sys.path.insert(0, str(Path(__file__).parent))
from _common import REDIS_URL, fresh_postgres

KEY = "bench-operator"
AGENT = """
name: desk
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {stt: fake, tts: fake, vad: fake_energy}
tools:
  - name: transfer_to_human
rules:
  - intent: human
    keywords: [human]
    tool: transfer_to_human
"""
FRAME = (np.sin(np.arange(320) * 2 * np.pi * 440 / 16000) * 3000).astype("<i2").tobytes()


async def until(ws: Any, kind: str, **fields: Any) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.recv(), 15)
        if isinstance(msg, bytes):
            continue
        event: dict[str, Any] = json.loads(msg)
        if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
            return event


async def arrives(ws: Any, frame: bytes) -> None:
    """Until this exact frame arrives (same rate both legs: the bridge passes it as is;
    audio queued before, such as the hold tone, is skipped)."""
    while await asyncio.wait_for(ws.recv(), 15) != frame:
        pass


def numbered(i: int) -> bytes:
    """A 20 ms frame that no other frame equals."""
    pcm = np.frombuffer(FRAME, dtype="<i2").copy()
    pcm[0] = i + 1  # FRAME itself starts at 0
    return pcm.tobytes()


async def one_transfer(
    url: str, frames: int, human_url: str | None = None
) -> tuple[float, list[float], list[float]]:
    async with (
        websockets.connect(url) as caller,
        websockets.connect(human_url or url) as human,
    ):
        await caller.send(json.dumps({"type": "start", "agent": "desk", "sample_rate": 16000}))
        await until(caller, "ready")
        started = time.perf_counter()
        await caller.send(json.dumps({"type": "text", "text": "a human please"}))
        dialing = await until(caller, "transfer", status="dialing")
        start = {"type": "start", "transfer_id": dialing["transfer_id"], "operator_key": KEY}
        await human.send(json.dumps(start))
        await until(human, "briefing")
        await caller.send(FRAME)
        await human.send(FRAME)
        await until(caller, "transfer", status="joined")
        setup = time.perf_counter() - started
        up, down = [], []
        for i in range(frames):
            frame = numbered(i)
            t0 = time.perf_counter()
            await caller.send(frame)
            await arrives(human, frame)
            up.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await human.send(frame)
            await arrives(caller, frame)
            down.append(time.perf_counter() - t0)
        return setup, up, down


def describe(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"| {name} | {statistics.median(ms):.2f} | {p95:.2f} | {len(ms)} |"


def codec_cost(frames: int = 20000) -> str:
    """Encoding and decoding one 20 ms frame (640 B of PCM16) as the relay does."""
    frame = numbered(1)
    t0 = time.perf_counter()
    for _ in range(frames):
        wire = json.dumps(audio_message(frame))
    encode = (time.perf_counter() - t0) / frames
    t0 = time.perf_counter()
    for _ in range(frames):
        assert audio_of(json.loads(wire)) == frame
    decode = (time.perf_counter() - t0) / frames
    return (
        f"relay framing of a 640 B frame: {len(wire)} B on the wire, "
        f"encode {encode * 1e6:.1f} µs, decode {decode * 1e6:.1f} µs"
    )


@contextlib.asynccontextmanager
async def store(kind: str, tmp: str) -> AsyncIterator[dict[str, str]]:
    if kind == "sqlite":
        yield {"database_url": f"sqlite:///{tmp}/bench.db"}
        return
    async with fresh_postgres() as url:
        yield {"database_url": url, "redis_url": REDIS_URL}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transfers", type=int, default=20)
    parser.add_argument("--frames", type=int, default=200, help="frames timed per direction")
    parser.add_argument("--store", choices=["sqlite", "postgres+redis"], default="sqlite")
    parser.add_argument("--workers", type=int, choices=[1, 2], default=1)
    parser.add_argument("--codec", action="store_true", help="also time the relay framing")
    args = parser.parse_args()
    if args.workers == 2 and args.store == "sqlite":
        parser.error("two workers share state through PostgreSQL + Redis")
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        (agents / "desk.yaml").write_text(AGENT)
        async with store(args.store, tmp) as backend, contextlib.AsyncExitStack() as stack:
            bases = []
            for i in range(args.workers):
                settings = Settings(
                    data_dir=Path(tmp) / f"data{i}",
                    agents_dir=agents,
                    operator_key=KEY,
                    **backend,  # type: ignore[arg-type]
                )
                bases.append(await stack.enter_async_context(serve_app(create_app(settings))))
            urls = [base.replace("http", "ws", 1) + "/v1/voice" for base in bases]
            setups, ups, downs = [], [], []
            for _ in range(args.transfers):
                setup, up, down = await one_transfer(urls[0], args.frames, urls[-1])
                setups.append(setup)
                ups += up
                downs += down
    where = "caller on worker A, console on worker B" if args.workers == 2 else "one worker"
    print(f"{args.store}, {where}")
    print("| measure | median ms | p95 ms | samples |")
    print("|---|---|---|---|")
    print(describe("setup: request → joined (console accepts at once)", setups))
    print(describe("caller → human, one 20 ms frame", ups))
    print(describe("human → caller, one 20 ms frame", downs))
    if args.codec:
        print(codec_cost())


if __name__ == "__main__":
    asyncio.run(main())
