"""Resume latency and the drain of one worker's live voice sessions onto another.

Two in-process Parley servers (worker A and worker B) share one PostgreSQL database
(created for the run, dropped after) and Redis, with fake engines and a rules brain.

- **Resume latency**: a voice session is started on A, its socket dropped, then resumed
  on B with the resume token; the time from opening B's socket (connect + ``start``) to
  ``ready``. Repeated ``--resumes`` times; p50 / p95.
- **Drain**: ``--sessions`` live voice sessions on A, each after one spoken turn; A
  drains (``channels.services.drain``, the step ``parley serve`` runs on SIGTERM). Per
  session: the time from the drain's start to ``go_away``; every client then resumes on
  B with the ``go_away`` token and speaks one more turn. Afterwards every history must
  hold the greeting once and each of the two turns exactly once (0 lost, 0 duplicated).

Usage: ``.venv/bin/python bench/resume.py [--resumes 10] [--sessions 10]``
(``PARLEY_BENCH_POSTGRES_URL``, ``PARLEY_BENCH_REDIS_URL`` point elsewhere.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import websockets

from parley.app import create_app
from parley.channels.services import Services, drain
from parley.config import Settings
from parley.server import serve_app

POSTGRES = os.environ.get(
    "PARLEY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS = os.environ.get("PARLEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
AGENT = """
name: resumer
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {stt: fake, tts: fake, vad: fake_energy}
limits: {resume_grace_s: 120}
rules:
  - intent: reserve
    keywords: [table]
    say: "Sure thing."
"""
HEARD = "I would like to book a table for two tonight"  # the fake STT's transcript
RATE = 16000
_t = np.arange(int(RATE * 0.6)) / RATE
SPEECH = (
    b"\x00\x00" * int(RATE * 0.3)
    + (3000 * np.sin(2 * np.pi * 440 * _t)).astype("<i2").tobytes()
    + b"\x00\x00" * int(RATE * 0.8)
)
RECV_S = 30.0


class Voice:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.seen: list[str] = []  # event types received, for a timeout's message

    @classmethod
    async def open(cls, base: str, **start: Any) -> tuple[Voice, dict[str, Any]]:
        ws = await websockets.connect(base.replace("http", "ws", 1) + "/v1/voice")
        voice = cls(ws)
        await ws.send(json.dumps({"type": "start", "sample_rate": RATE, **start}))
        return voice, await voice.until("ready")

    async def until(self, kind: str) -> dict[str, Any]:
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.recv(), RECV_S)
            except TimeoutError:
                raise TimeoutError(f"no {kind} within {RECV_S} s; seen {self.seen}") from None
            if isinstance(msg, str):
                event: dict[str, Any] = json.loads(msg)
                self.seen.append(event["type"])
                if event["type"] == kind:
                    return event

    async def quiet(self, gap_s: float = 0.5) -> None:
        """Read until the agent's audio stops for ``gap_s`` (its playout is over): speech
        over the agent's voice may be taken as a backchannel and start no turn."""
        while True:
            try:
                msg = await asyncio.wait_for(self.ws.recv(), gap_s)
            except TimeoutError:
                return
            if isinstance(msg, str):
                self.seen.append(json.loads(msg)["type"])

    async def talk(self) -> None:
        await self.quiet()
        for i in range(0, len(SPEECH), 640):
            await self.ws.send(SPEECH[i : i + 640])
        await self.until("done")


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    name = f"parley_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+asyncpg://{POSTGRES.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(what: str, values: list[float]) -> str:
    return (
        f"{what}: p50 {statistics.median(values) * 1000:.1f} ms, "
        f"p95 {pct(values, 0.95) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms (n={len(values)})"
    )


async def resume_latency(a: str, b: str, n: int) -> list[float]:
    took: list[float] = []
    for _ in range(n):
        voice, ready = await Voice.open(a, agent="resumer")
        await voice.until("done")  # the greeting
        await voice.ws.close()
        started = time.perf_counter()
        moved, _ = await Voice.open(b, resume_token=ready["resume_token"])
        took.append(time.perf_counter() - started)
        await moved.ws.send(json.dumps({"type": "end"}))
        await moved.ws.close()
    return took


async def drain_onto(
    a: str, a_services: Services, b: str, b_services: Services, n: int, drain_s: float
) -> dict[str, Any]:
    opened = await asyncio.gather(*(Voice.open(a, agent="resumer") for _ in range(n)))
    await asyncio.gather(*(v.until("done") for v, _ in opened))  # greetings
    await asyncio.gather(*(v.talk() for v, _ in opened))
    started = time.perf_counter()
    draining = asyncio.create_task(drain(a_services, drain_s))

    async def go_away(voice: Voice) -> tuple[float, str]:
        event = await voice.until("go_away")
        return time.perf_counter() - started, str(event["resume_token"])

    told = await asyncio.gather(*(go_away(v) for v, _ in opened))
    moved = await asyncio.gather(*(Voice.open(b, resume_token=token) for _, token in told))
    await asyncio.wait_for(draining, drain_s + 10)
    drained = time.perf_counter() - started
    await asyncio.gather(*(v.talk() for v, _ in moved))
    lost = duplicated = ended = 0
    for (_, ready), (voice, again) in zip(opened, moved, strict=True):
        assert again["session_id"] == ready["session_id"]
        history = await b_services.store.list_messages(ready["session_id"])
        said = [(m.role, m.text) for m in history]
        for expected, times in (
            (("assistant", "Hi."), 1),
            (("user", HEARD), 2),
            (("assistant", "Sure thing."), 2),
        ):
            count = said.count(expected)
            lost += max(0, times - count)
            duplicated += max(0, count - times)
        session = await b_services.store.get_session(ready["session_id"])
        ended += session is None or session.status != "active"
        await voice.ws.close()
    return {
        "go_away": [t for t, _ in told],
        "drain_s": drained,
        "lost": lost,
        "duplicated": duplicated,
        "ended": ended,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resumes", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--drain-s", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        (agents / "resumer.yaml").write_text(AGENT)
        async with database() as db:
            common: dict[str, Any] = {"database_url": db, "redis_url": REDIS, "agents_dir": agents}
            settings = {
                "session_rate_limit": 0,
                "max_voice_connections": max(100, 2 * args.sessions),
            }
            make = [
                create_app(Settings(data_dir=Path(tmp) / f"w{i}", **common, **settings))  # type: ignore[arg-type]
                for i in range(2)
            ]
            async with serve_app(make[0], drain_s=1.0) as a, serve_app(make[1], drain_s=1.0) as b:
                sa, sb = make[0].state.services, make[1].state.services
                if args.resumes:
                    print(
                        line(
                            "resume (socket open -> ready, other worker)",
                            await resume_latency(a, b, args.resumes),
                        )
                    )
                if args.sessions:
                    result = await drain_onto(a, sa, b, sb, args.sessions, args.drain_s)
                    print(
                        line(
                            f"drain of {args.sessions} voice sessions: drain start -> go_away",
                            result["go_away"],
                        )
                    )
                    within = sum(t <= 1.0 for t in result["go_away"])
                    print(f"go_away within 1 s: {within}/{args.sessions}")
                    print(f"drain returned after {result['drain_s']:.2f} s (all moved to worker B)")
                    print(
                        f"turns lost: {result['lost']}, duplicated: {result['duplicated']}, "
                        f"sessions ended: {result['ended']}"
                    )


if __name__ == "__main__":
    asyncio.run(main())
