"""Speech-to-speech agents (``brain: realtime``): Parley in front of the local fake providers.

One process: the fake provider (``parley.testing.FakeGeminiLive`` / ``FakeOpenAIRealtime``,
answering every caller turn after a fixed ``--delay``), a Parley server (in-process,
SQLite) with a realtime agent pointed at it, and the clients.

- **Added latency**: a caller turn of 1 s of 16 kHz audio sent as 20 ms frames back to back;
  the time from the last frame sent to the first model audio back. *Direct*: a bare
  WebSocket client speaking the provider's JSON to the fake (what an app without Parley
  would do); *via Parley*: the same turn over ``/v1/voice``. Parley's added latency is the
  difference of the medians.
- **Reconnect gap**: a caller streaming at real time (20 ms frames every 20 ms) through
  Parley to Gemini; the first answer carries a ``goAway`` mid-answer, so Parley swaps to a
  resumed connection while the caller talks on. At the provider: the hold (first audio on
  the new connection minus the last on the old), the longest gap between consecutive
  caller-audio arrivals, and the bytes lost (sent minus received).

- **CPU per session** (``--load N``): N callers in a child process stream real-time audio
  for ``--seconds`` through Parley to the fake Gemini (which answers every 3 s of caller
  audio with 1 s of speech). The CPU time of the Parley + fake process over the window,
  minus a control run where the same callers speak straight to the fake, is Parley's
  cost; divided by the session-seconds it gives CPU per session and sessions per core.

- **Idle cost** (``--idle N``): N callers (a child process) open a realtime voice session
  each and stream silence in real time for ``--seconds`` to a fake Gemini that never
  answers. The agent names the default cascaded engines (pocketsphinx, Silero), which a
  realtime session does not use: the figure shows what an unused STT/VAD stream would
  cost. Reported: the Parley + fake process's CPU per session over the window, and its
  RSS growth per session (peak during the window minus the baseline after one warm-up
  session built the agent's engines).

Usage: ``.venv/bin/python bench/s2s.py [--turns 20] [--delay 0.2] [--swaps 10] [--load 20]
[--idle 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

from parley.app import create_app
from parley.audio.resample import Resampler
from parley.config import Settings
from parley.s2s import gemini_wire, openai_wire
from parley.s2s.base import S2SConfig
from parley.server import serve_app
from parley.testing.fake_gemini_live import FakeGeminiLive
from parley.testing.fake_openai_realtime import FakeOpenAIRealtime
from parley.testing.s2s_script import FakeServerBase, Reply

RATE = 16000
FRAME = 640  # 20 ms of 16 kHz PCM16
TURN = b"\x10\x00" * RATE  # 1 s of (quiet) caller audio
RECV_S = 30.0
AGENT = """
name: rt
brain: realtime
engines: {{s2s: {engine}, stt: fake, tts: fake, vad: fake_energy}}
instructions: "You are a test agent."
"""


IDLE_AGENT = """
name: rt
brain: realtime
engines: {{s2s: {engine}}}
instructions: "You are a test agent."
"""


def reply() -> Reply:
    return Reply(heard="Hello.", says="Hi there, how can I help?", chunks=25)


async def direct_turn(fake: FakeServerBase, engine: str) -> float:
    """One caller turn straight to the fake: last frame sent → first audio (seconds)."""
    if engine == "gemini_live":
        url = gemini_wire.ws_url(fake.base_url, "k")
        setup = gemini_wire.encode_setup(S2SConfig())
        frames = [gemini_wire.encode_audio(TURN[i : i + FRAME]) for i in range(0, len(TURN), FRAME)]
    else:
        url = openai_wire.ws_url(fake.base_url + "/v1", None)
        setup = openai_wire.encode_session_update(S2SConfig())
        up = Resampler(RATE, openai_wire.WIRE_RATE)
        frames = [
            openai_wire.encode_audio(up.process(TURN[i : i + FRAME]))
            for i in range(0, len(TURN), FRAME)
        ]
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(setup)
        while True:  # setupComplete / session.updated
            msg = json.loads(await ws.recv())
            if "setupComplete" in msg or msg.get("type") == "session.updated":
                break
        for frame in frames:
            await ws.send(frame)
        sent = time.perf_counter()
        first: float | None = None
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), RECV_S))
            content = msg.get("serverContent", {})
            audio = msg.get("type") == "response.output_audio.delta" or "modelTurn" in content
            if audio and first is None:
                first = time.perf_counter() - sent
            if msg.get("type") == "response.done" or content.get("turnComplete"):
                assert first is not None
                return first  # the answer read to its end, so the socket closes at once


async def parley_turn(ws: Any) -> float:
    """One caller turn through ``/v1/voice``: last frame sent → first audio frame back."""
    for i in range(0, len(TURN), FRAME):
        await ws.send(TURN[i : i + FRAME])
    sent = time.perf_counter()
    first: float | None = None
    while True:
        msg = await asyncio.wait_for(ws.recv(), RECV_S)
        if isinstance(msg, bytes):
            if first is None:
                first = time.perf_counter() - sent
        elif json.loads(msg)["type"] == "done" and first is not None:
            return first


async def with_parley(fake: FakeServerBase, engine: str, work: Any, agent: str = AGENT) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        agents = Path(tmp) / "agents"
        agents.mkdir()
        (agents / "rt.yaml").write_text(agent.format(engine=engine))
        keys = (
            {"gemini_api_key": "k", "gemini_base_url": fake.base_url}
            if engine == "gemini_live"
            else {"openai_api_key": "k", "openai_base_url": fake.base_url + "/v1"}
        )
        settings = Settings(
            data_dir=Path(tmp) / "data",
            agents_dir=agents,
            database_url=f"sqlite+aiosqlite:///{tmp}/p.db",
            session_rate_limit=100_000,  # every caller comes from 127.0.0.1
            **keys,
        )
        async with serve_app(create_app(settings)) as base:
            return await work(base.replace("http", "ws", 1) + "/v1/voice")


async def open_voice(url: str) -> Any:
    ws = await websockets.connect(url, max_size=None)
    await ws.send(json.dumps({"type": "start", "agent": "rt", "sample_rate": RATE}))
    while json.loads(await ws.recv())["type"] != "ready":
        pass
    return ws


async def latency(engine: str, turns: int, delay: float) -> dict[str, Any]:
    fake_type = FakeGeminiLive if engine == "gemini_live" else FakeOpenAIRealtime
    wire_bytes = len(TURN) if engine == "gemini_live" else len(TURN) * 3 // 2 - 1000
    fake = fake_type([reply() for _ in range(4 * turns)], bytes_per_turn=wire_bytes)
    fake.reply_delay_s = delay
    async with fake.running():
        direct = [await direct_turn(fake, engine) for _ in range(turns)]

        async def through(url: str) -> list[float]:
            ws = await open_voice(url)
            try:
                return [await parley_turn(ws) for _ in range(turns)]
            finally:
                await ws.close()

        via = await with_parley(fake, engine, through)
    return {
        "engine": engine,
        "delay_ms": delay * 1000,
        "direct_ms": summary(direct),
        "parley_ms": summary(via),
        "added_p50_ms": round((statistics.median(via) - statistics.median(direct)) * 1000, 1),
    }


async def swap_gap(swaps: int) -> dict[str, Any]:
    holds, gaps, lost = [], [], []
    for _ in range(swaps):
        fake = FakeGeminiLive(
            [
                Reply(heard="Hello.", says=" ".join(["word"] * 50), chunks=50, go_away_after=10),
                *[reply() for _ in range(10)],
            ],
            bytes_per_turn=len(TURN),
            keep_reading_after_go_away=True,
        )
        async with fake.running():

            async def talk(url: str, fake: FakeGeminiLive = fake) -> int:
                ws = await open_voice(url)
                reader = asyncio.create_task(drain(ws))
                stream = TURN * 4
                start = time.perf_counter()
                for n, i in enumerate(range(0, len(stream), FRAME)):
                    await ws.send(stream[i : i + FRAME])
                    await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.perf_counter()))
                for _ in range(500):  # wait (bounded) for the last bytes to arrive
                    if fake.audio_bytes >= len(stream):
                        break
                    await asyncio.sleep(0.01)
                reader.cancel()
                await ws.close()
                return len(stream)

            sent = await with_parley(fake, "gemini_live", talk)
            old, new = fake.connections[0], fake.connections[-1]
            holds.append(new.audio_times[0] - old.audio_times[-1])
            times = sorted(t for c in fake.connections for t in c.audio_times)
            gaps.append(max(b - a for a, b in itertools.pairwise(times)))
            lost.append(sent - fake.audio_bytes)
            assert fake.resumed_with, "no resumption happened"
    return {
        "swaps": swaps,
        "hold_ms": summary(holds),
        "max_arrival_gap_ms": summary(gaps),
        "bytes_lost_total": sum(lost),
    }


async def drain(ws: Any) -> None:
    async for _ in ws:
        pass


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered) * 1000, 1),
        "p95": round(p95 * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
        "n": len(ordered),
    }


# --- CPU per session ----------------------------------------------------------------


async def caller(url: str, seconds: float, direct: bool) -> int:
    """One real-time caller (child process): 20 ms frames for ``seconds``; returns the
    model audio bytes it received."""
    ws = await websockets.connect(url, max_size=None)
    if direct:
        await ws.send(gemini_wire.encode_setup(S2SConfig()))
        await ws.recv()
    else:
        await ws.send(json.dumps({"type": "start", "agent": "rt", "sample_rate": RATE}))
    got = 0

    async def read() -> None:
        nonlocal got
        async for msg in ws:
            got += len(msg)

    reader = asyncio.create_task(read())
    stream = TURN * int(seconds + 1)
    start = time.perf_counter()
    for n, i in enumerate(range(0, int(RATE * 2 * seconds), FRAME)):
        frame = stream[i : i + FRAME]
        await ws.send(gemini_wire.encode_audio(frame) if direct else frame)
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.perf_counter()))
    reader.cancel()
    await ws.close()
    return got


async def callers_main(url: str, n: int, seconds: float, direct: bool) -> None:
    got = await asyncio.gather(*(caller(url, seconds, direct) for _ in range(n)))
    print(json.dumps({"received_bytes": sum(got)}))


async def cpu_window(url: str, n: int, seconds: float, direct: bool) -> tuple[float, str]:
    """CPU seconds this process used while ``n`` callers (a child process) ran."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--callers",
        url,
        str(n),
        str(seconds),
        str(int(direct)),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used, out.decode().strip()


async def cpu_per_session(n: int, seconds: float) -> dict[str, Any]:
    fake = FakeGeminiLive(
        [Reply(heard="Hello.", says="Hi there.", chunks=50) for _ in range(100 * n)],
        bytes_per_turn=3 * len(TURN),
    )
    async with fake.running():
        control, control_out = await cpu_window(
            gemini_wire.ws_url(fake.base_url, "k"), n, seconds, direct=True
        )

        async def through(url: str) -> tuple[float, str]:
            return await cpu_window(url, n, seconds, direct=False)

        total, out = await with_parley(fake, "gemini_live", through)
    for text in (control_out, out):
        assert text and json.loads(text)["received_bytes"] > 0, f"callers failed: {text!r}"
    parley = max(0.0, total - control)
    per_session = parley / (n * seconds)
    return {
        "sessions": n,
        "seconds": seconds,
        "cpu_s_with_parley": round(total, 2),
        "cpu_s_fake_only": round(control, 2),
        "parley_cpu_per_session_pct": round(per_session * 100, 2),
        "sessions_per_core_at_70pct": round(0.7 / per_session, 1) if per_session else None,
        "callers": [control_out, out],
    }


# --- idle cost ------------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def idle_cost(n: int, seconds: float) -> dict[str, Any]:
    fake = FakeGeminiLive([], bytes_per_turn=10**12)  # never ends a caller turn

    async def through(url: str) -> dict[str, Any]:
        warm = await open_voice(url)  # builds the agent's engines once
        await warm.close()
        await asyncio.sleep(1.0)
        baseline = rss_mb()
        peak = baseline
        window = asyncio.create_task(cpu_window(url, n, seconds, direct=False))
        while not window.done():
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.25)
        used, out = await window
        return {"cpu_s": used, "rss_baseline_mb": baseline, "rss_peak_mb": peak, "out": out}

    async with fake.running():
        got = await with_parley(fake, "gemini_live", through, agent=IDLE_AGENT)
    assert fake.audio_bytes > 0, "no caller audio reached the provider"
    return {
        "idle_sessions": n,
        "seconds": seconds,
        "cpu_s_parley_and_fake": round(got["cpu_s"], 2),
        "cpu_per_session_pct": round(got["cpu_s"] / (n * seconds) * 100, 2),
        "rss_baseline_mb": round(got["rss_baseline_mb"], 1),
        "rss_per_session_mb": round((got["rss_peak_mb"] - got["rss_baseline_mb"]) / n, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--load", type=int, nargs="*", default=[], help="caller counts")
    parser.add_argument("--idle", type=int, nargs="*", default=[], help="idle session counts")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--callers", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.callers:  # the child process of --load
        url, n, seconds, direct = args.callers
        await callers_main(url, int(n), float(seconds), direct == "1")
        return
    results: list[dict[str, Any]] = []
    if args.turns:
        results += [
            await latency(e, args.turns, args.delay) for e in ("gemini_live", "openai_realtime")
        ]
    if args.swaps:
        results.append(await swap_gap(args.swaps))
    for n in args.load:
        results.append(await cpu_per_session(n, args.seconds))
    for n in args.idle:
        results.append(await idle_cost(n, args.seconds))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
