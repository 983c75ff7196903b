"""Phone benchmark: Parley's Twilio media stream with the fake engines, μ-law in and out.

    .venv/bin/python bench/phone.py --quick          # N = 1, 5 for 10 s (a smoke run)
    .venv/bin/python bench/phone.py --ns 1,10,50,100,200 --duration 30 --nice -15
    .venv/bin/python bench/phone.py --script barge --duration 14 --ramp 3 --nice -15

For each N: ``parley serve`` (agent ``bench`` of ``bench/agents``: the fake engines of
the shared spec, pinned to CPU 0, fresh data dir, WARNING logs) is started, and this
process plays N simulated Twilio calls against it (pinned to CPU 1): each answers the
voice webhook, opens ``/v1/telephony/twilio/stream`` with the webhook's parameters and
then, in real time, sends 20 ms μ-law ``media`` messages (``--script``: ``turns``, 1 s
of silence then a 0.6 s tone every 3 s; or ``barge``, the voice load client's "full"
script: an utterance, the reply, a barge-in 1 s into it) while it plays the agent's
μ-law audio at real speed and echoes every ``mark`` when the audio before it has been
played, as Twilio does. At the end it hangs up (``stop``).

Measured per N: response latency (end of the caller's tone, i.e. the send time of its
last frame as in the voice load client → first agent media message), the *added*
latency (minus the 640 ms floor of the fake engines: 200 ms end-of-turn silence +
100 ms STT + 260 ms LLM first sentence + 80 ms TTS first chunk, the floor of
``bench/voice.py``), barge-in (onset of a tone over the agent's audio → ``clear``;
floor 200 ms), playback gaps (the agent's audio ran dry for more than 100 ms inside a
reply), server CPU (% of one core, and ms per call-second) and
RSS. CPU is taken over the steady window (every call connected: from ``--ramp`` + 1 s
to ``--duration`` − 1 s) for the server, for this process (the callers: if it nears
100 % the client, not the server, limits the run) and for the machine (what is left
is *foreign* CPU, other people's work). The load average is recorded before and after
each run; a run with more than ``--foreign-pct`` of foreign CPU is re-run once.
Compare with the browser-voice figures of ``bench/voice.py`` in RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import _profile

from parley.audio.g711 import encode_ulaw

FRAME_S = 0.02
FRAME_BYTES = 160
FLOOR_MS = 640.0
GAP_S = 0.1
TONE_S, PAUSE_S, LEAD_IN_S = 0.6, 2.4, 1.0  # the "turns" script
UTTERANCE_S, BARGE_DELAY_S = 1.8, 1.0  # the "barge" script (the voice load client's "full")


def ulaw_frames(seconds: float, *, speech: bool) -> list[bytes]:
    n = round(seconds * 8000)
    if speech:
        t = np.arange(n) / 8000
        pcm = (3000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    else:
        pcm = b"\x00\x00" * n
    ulaw = encode_ulaw(pcm)
    return [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]


SILENCE = ulaw_frames(FRAME_S, speech=False)[0]
TONE = ulaw_frames(UTTERANCE_S, speech=True)  # the turns script uses its first 0.6 s


@dataclass
class Call:
    """One simulated caller: what it measured."""

    index: int
    latencies: list[float] = field(default_factory=list)
    barges: list[float] = field(default_factory=list)  # tone onset over the agent → clear
    gaps: int = 0
    media_in: int = 0
    error: str | None = None
    _speech_end: float | None = None
    _play_until: float = 0.0
    _in_reply: bool = False
    _first_reply: float | None = None
    _barge_onset: float | None = None
    _barged: bool = False


async def answer(http: httpx.AsyncClient, base: str, call_sid: str) -> dict[str, str]:
    form = {"CallSid": call_sid, "From": "+15550001111", "To": "+15550002222"}
    resp = await http.post(f"{base}/v1/telephony/twilio/voice", data=form)
    resp.raise_for_status()
    stream = ET.fromstring(resp.text).find("./Connect/Stream")
    if stream is None:
        raise RuntimeError(f"no <Stream> in {resp.text!r}")
    return {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}


def send(ws: ClientConnection, text: str) -> asyncio.Task[None]:
    async def go() -> None:
        with contextlib.suppress(ConnectionClosed):  # an echo due after the hang-up
            await ws.send(text)

    return asyncio.ensure_future(go())


async def read(ws: ClientConnection, call: Call, sid: str) -> None:
    loop = asyncio.get_running_loop()
    echoes: set[asyncio.Task[None]] = set()  # mark echoes due when their audio has played
    async for raw in ws:
        now = loop.time()
        message = json.loads(raw)
        event = message.get("event")
        if event == "media":
            call.media_in += 1
            if call._speech_end is not None:
                call.latencies.append(now - call._speech_end)
                call._speech_end = None
                call._in_reply = True
                if call._first_reply is None:
                    call._first_reply = now
            elif call._in_reply and now - call._play_until > GAP_S:
                call.gaps += 1
            size = len(base64.b64decode(message["media"]["payload"])) / 8000
            call._play_until = max(call._play_until, now) + size
        elif event == "mark":
            echo = json.dumps({"event": "mark", "streamSid": sid, "mark": message["mark"]})
            loop.call_at(max(call._play_until, now), lambda e=echo: echoes.add(send(ws, e)))
        elif event == "clear":
            call._play_until = now
            call._in_reply = False
            if call._barge_onset is not None:
                call.barges.append(now - call._barge_onset)
                call._barge_onset = None


def tone_to_start(script: str, call: Call, i: int, now: float) -> int:
    """How many tone frames the caller starts speaking at frame ``i`` (0: none).

    ``turns``: 1 s of silence, then a 0.6 s tone every 3 s (each a barge-in on the
    6 s fake reply). ``barge``: the voice load client's "full" script — 1 s of
    silence, a 1.8 s utterance, silence until 1 s after the first reply audio, the
    utterance again (a barge-in), then silence. ``silence``: only silence (the cost of
    a connected call, beside the voice benchmark's idle run).
    """
    lead = int(LEAD_IN_S / FRAME_S)
    if script == "silence":
        return 0
    if script == "turns":
        period = int((TONE_S + PAUSE_S) / FRAME_S)
        return int(TONE_S / FRAME_S) if i >= lead and (i - lead) % period == 0 else 0
    if i == lead:
        return len(TONE)
    if (
        not call._barged
        and call._first_reply is not None
        and now >= call._first_reply + BARGE_DELAY_S
    ):
        call._barged = True
        return len(TONE)
    return 0


async def run_call(
    base: str, http: httpx.AsyncClient, call: Call, duration: float, script: str
) -> None:
    sid, call_sid = f"MZ{call.index:032d}", f"CA{call.index:032d}"
    params = await answer(http, base, call_sid)
    url = base.replace("http", "ws", 1) + "/v1/telephony/twilio/stream"
    # no permessage-deflate, like the voice benchmark's load client (compression=None)
    async with connect(url, max_size=1 << 20, compression=None) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "streamSid": sid,
            "callSid": call_sid,
            "accountSid": "AC" + "0" * 32,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        }
        await ws.send(json.dumps({"event": "start", "streamSid": sid, "start": start}))
        reader = asyncio.create_task(read(ws, call, sid))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tone_left = tone_len = 0
        for i in range(int(duration / FRAME_S)):
            await asyncio.sleep(max(0.0, t0 + i * FRAME_S - loop.time()))
            now = loop.time()
            if tone_left == 0:
                tone_left = tone_len = tone_to_start(script, call, i, now)
                if tone_left and now < call._play_until:  # speaking over the agent: the
                    call._barge_onset = now - FRAME_S  # start of the first frame's audio
            if tone_left:
                frame = TONE[tone_len - tone_left]
                tone_left -= 1
                if not tone_left:  # end of speech: the last speech frame's send time,
                    call._speech_end = now  # as the voice load client measures it
                    call._in_reply = False
            else:
                frame = SILENCE
            payload = base64.b64encode(frame).decode()
            media = {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20)}
            await ws.send(
                json.dumps(
                    {"event": "media", "streamSid": sid, "media": {**media, "payload": payload}}
                )
            )
        await ws.send(
            json.dumps({"event": "stop", "streamSid": sid, "stop": {"callSid": call_sid}})
        )
        reader.cancel()


@dataclass
class Window:
    """CPU seconds of the server, this process and the whole machine over a window."""

    server: float = 0.0
    client: float = 0.0
    machine: float = 0.0
    wall: float = 0.0


def cpu_now(server_pid: int) -> tuple[float, float, float, float]:
    return (
        common.proc_cpu_seconds(server_pid),
        time.process_time(),
        common.machine_busy_seconds(),
        time.monotonic(),
    )


async def steady_window(server_pid: int, begin: float, end: float, into: Window) -> None:
    """Measure CPU from ``begin`` to ``end`` seconds after now (every call connected)."""
    await asyncio.sleep(begin)
    a = cpu_now(server_pid)
    await asyncio.sleep(max(0.5, end - begin))
    b = cpu_now(server_pid)
    into.server, into.client, into.machine, into.wall = (y - x for x, y in zip(a, b, strict=True))


async def run_calls(
    base: str, n: int, args: argparse.Namespace, server_pid: int, window: Window
) -> list[Call]:
    duration, ramp = args.duration, args.ramp
    calls = [Call(i) for i in range(n)]
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(call: Call) -> None:
            await asyncio.sleep(ramp * call.index / max(n, 1))
            try:
                await run_call(base, http, call, duration, args.script)
            except Exception as exc:
                call.error = f"{type(exc).__name__}: {exc}"

        measure = asyncio.create_task(steady_window(server_pid, ramp + 1.0, duration - 1.0, window))
        await asyncio.gather(*(one(c) for c in calls))
        await measure
    return calls


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(values, q))


def run_n(args: argparse.Namespace, n: int, profile: Path | None = None) -> dict[str, Any]:
    log = args.out.with_suffix(f".n{n}.log")
    port = common.free_port()
    env = {"PARLEY_PUBLIC_URL": f"http://127.0.0.1:{port}", "PARLEY_TWILIO_DEFAULT_AGENT": "bench"}
    load_before = os.getloadavg()
    window = Window()
    with common.parley_server(log, env=env, port=port) as server:
        base = f"http://127.0.0.1:{server.port}"
        recording = _profile.recording(profile, server.pid) if profile else contextlib.nullcontext()
        with recording:
            calls = asyncio.run(run_calls(base, n, args, server.pid, window))
        rss = common.proc_rss_kb(server.pid)
    load_after = os.getloadavg()
    latencies = [x * 1000 for c in calls for x in c.latencies]
    barges = [x * 1000 for c in calls for x in c.barges]
    replies_due = args.script != "silence"
    failed = [c for c in calls if c.error or (replies_due and not c.latencies)]
    wall = max(window.wall, 1e-9)
    server_pct, client_pct = 100 * window.server / wall, 100 * window.client / wall
    p50, p95 = pct(latencies, 50), pct(latencies, 95)
    return {
        "n": n,
        "ok": n - len(failed),
        "errors": sorted({c.error for c in failed if c.error})[:3],
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
        "added_p50_ms": None if p50 is None else p50 - FLOOR_MS,
        "added_p95_ms": None if p95 is None else p95 - FLOOR_MS,
        "barge_p50_ms": pct(barges, 50),
        "barge_p95_ms": pct(barges, 95),
        "barge_ins": len(barges),
        "gaps": sum(c.gaps for c in calls),
        "gap_calls": sum(1 for c in calls if c.gaps),
        "cpu_pct": server_pct,
        "cpu_pct_per_call": server_pct / n,
        "cpu_ms_per_call_s": 1000 * window.server / (n * wall),
        "client_cpu_pct": client_pct,
        "foreign_cpu_pct": 100 * (window.machine - window.server - window.client) / wall,
        "steady_window_s": window.wall,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "rss_mb": rss / 1024,
        "replies": len(latencies),
        "mean_media_in": statistics.mean(c.media_in for c in calls),
    }


def run_n_clean(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """``run_n``, re-run once when other people's work took a real share of the machine."""
    res = run_n(args, n)
    if res["foreign_cpu_pct"] > args.foreign_pct:
        print(json.dumps(res), flush=True)
        print(f"N={n}: foreign CPU {res['foreign_cpu_pct']:.0f}% of a core; re-running", flush=True)
        res = run_n(args, n)
        res["attempts"] = 2
    return res


def broke(res: dict[str, Any], n: int) -> bool:
    """The voice benchmark's stop rule: > 20 % of calls failed or gapped, or p50 > 3x floor."""
    if n - res["ok"] + res["gap_calls"] > 0.2 * n:
        return True
    p50 = res["latency_p50_ms"]
    return p50 is not None and p50 > 3 * FLOOR_MS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", default="1,10,50,100", help="comma-separated call counts")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per call")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds to start all calls")
    parser.add_argument("--quick", action="store_true", help="N = 1, 5 for 10 s")
    parser.add_argument(
        "--script",
        choices=["turns", "barge", "silence"],
        default="turns",
        help="turns: a 0.6 s tone every 3 s; barge: the voice load client's 'full' script; "
        "silence: only silence (idle cost)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the sweep, one extra run at N under py-spy (not tabled)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this process and the server it starts (e.g. -15 on a shared "
        "machine; needs root)",
    )
    parser.add_argument(
        "--foreign-pct",
        type=float,
        default=15.0,
        help="re-run a point once when foreign CPU exceeded this (%% of one core)",
    )
    parser.add_argument("--out", type=Path, default=common.default_out("phone"))
    args = parser.parse_args(argv)
    if args.quick:
        args.ns, args.duration = "1,5", 10.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    niceness = common.raise_priority(args.nice)
    os.sched_setaffinity(0, {common.CLIENT_CPU})  # the callers; the server is on SERVER_CPU
    results = []
    for n in [int(x) for x in args.ns.split(",") if x]:
        res = run_n_clean(args, n)
        results.append(res)
        print(json.dumps(res), flush=True)
        if broke(res, n):
            print(f"broke at N={n}; not increasing N", flush=True)
            break
    headers = [
        "N",
        "ok",
        "gap calls (gaps)",
        "added p50 / p95 ms",
        "barge-in → clear p50 / p95 ms",
        "server CPU %",
        "CPU %/call",
        "CPU ms/call-s",
        "client CPU %",
        "foreign CPU %",
        "load before → after",
        "RSS MB",
    ]
    f = common.fmt
    rows = [
        [
            r["n"],
            r["ok"],
            f"{r['gap_calls']} ({r['gaps']})",
            f"{f(r['added_p50_ms'])} / {f(r['added_p95_ms'])}",
            f"{f(r['barge_p50_ms'])} / {f(r['barge_p95_ms'])}",
            f(r["cpu_pct"]),
            f(r["cpu_pct_per_call"], 2),
            f(r["cpu_ms_per_call_s"], 1),
            f(r["client_cpu_pct"]),
            f(r["foreign_cpu_pct"]),
            f"{r['loadavg_before'][0]:.2f} → {r['loadavg_after'][0]:.2f}",
            f(r["rss_mb"]),
        ]
        for r in results
    ]
    print(common.md_table(headers, rows))
    if args.profile:
        collapsed = args.out.with_suffix(f".profile-n{args.profile}.txt")
        run_n(args, args.profile, profile=collapsed)
        _profile.report(collapsed)
    facts = {**common.machine_facts(peers=False), "niceness": niceness}
    facts["autogroup"] = common.autogroup()
    common.write_json(
        args.out, {"machine": facts, "args": vars(args) | {"out": str(args.out)}, "runs": results}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
