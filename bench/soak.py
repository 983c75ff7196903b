"""Soak: many voice sessions plus chat for a long time; does the server's memory stay flat?

One ``parley serve`` (the fake-engine bench agent, SQLite) runs for ``--minutes``. Rounds
of the shared load client keep ``--voice`` voice sessions busy (each speaks, is answered,
barges in, hangs up; the next round connects fresh sessions), while a chat loop keeps
``--chat`` sessions sending messages. Every ``--sample`` seconds the server's RSS and
open file descriptors are recorded. The verdict compares the last third with the middle
third (after warm-up): growth per minute, and whether it gives memory back.

    .venv/bin/python bench/soak.py --minutes 30 --voice 50 --chat 5

Writes ``soak.json`` and prints one table row per sample (``--out`` directory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

START = '{"type":"start","agent":"bench","sample_rate":16000}'


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def voice_round(port: int, n: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    cmd = common.pin(common.CLIENT_CPU, [
        str(common.CLIENT_PY), str(common.HARNESS / "loadclient.py"),
        "--url", f"ws://127.0.0.1:{port}/v1/voice", "--start-json", START,
        "--sessions", str(n), "--duration", str(seconds), "--ramp", "5",
        "--script", "full", "--out", str(out), "--quiet",
    ])  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def chat_loop(base: str, sessions: int, stop: asyncio.Event, counts: dict[str, int]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def one() -> None:
            while not stop.is_set():
                made = (await http.post("/v1/sessions", json={"agent": "demo"})).json()
                auth = {"Authorization": f"Bearer {made['session_token']}"}
                url = f"/v1/sessions/{made['session_id']}/messages"
                for text in ("what's on the menu?", "a table for 2 next friday at 7pm",
                             "Ann Lee", "no", "what are your opening hours?"):
                    if stop.is_set():
                        break
                    async with http.stream("POST", url, json={"text": text}, headers=auth) as r:
                        async for _ in r.aiter_bytes():
                            pass
                    counts["turns"] += 1
                await http.post(f"/v1/sessions/{made['session_id']}/end", headers=auth)
                counts["sessions"] += 1
                await asyncio.sleep(0.5)

        await asyncio.gather(*(one() for _ in range(sessions)))


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    samples: list[dict[str, Any]] = []
    counts = {"turns": 0, "sessions": 0, "voice_rounds": 0}
    with common.parley_server(out / "server.log") as server:
        base = f"http://127.0.0.1:{server.port}"
        stop = asyncio.Event()
        chat = asyncio.create_task(chat_loop(base, args.chat, stop, counts))
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        voice: subprocess.Popen[bytes] | None = None
        next_sample = t0
        while time.monotonic() < end:
            if voice is None or voice.poll() is not None:
                counts["voice_rounds"] += 1
                voice = voice_round(server.port, args.voice, args.round_s, out / "round.json")
            if time.monotonic() >= next_sample:
                row = {
                    "t_s": round(time.monotonic() - t0),
                    "rss_mb": round(common.proc_rss_kb(server.pid) / 1024, 1),
                    "fds": open_fds(server.pid),
                    **counts,
                }
                samples.append(row)
                print(json.dumps(row), flush=True)
                next_sample += args.sample
            await asyncio.sleep(1.0)
        stop.set()
        if voice is not None:
            voice.wait(timeout=120)
        await asyncio.wait_for(chat, 120)
    return {"args": {k: str(v) for k, v in vars(args).items()}, "samples": samples,
            "verdict": verdict(samples)}


def verdict(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """RSS growth per minute over the middle and the last third (after warm-up)."""
    if len(samples) < 6:
        return {}
    third = len(samples) // 3
    mid, last = samples[third : 2 * third], samples[2 * third :]

    def slope(rows: list[dict[str, Any]]) -> float:
        dt = (rows[-1]["t_s"] - rows[0]["t_s"]) / 60 or 1.0
        return round((rows[-1]["rss_mb"] - rows[0]["rss_mb"]) / dt, 3)

    return {
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_after_warmup_mb": mid[0]["rss_mb"],
        "rss_end_mb": samples[-1]["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "mb_per_min_middle": slope(mid),
        "mb_per_min_last": slope(last),
        "fds_min_max_after_warmup": [min(s["fds"] for s in mid + last),
                                     max(s["fds"] for s in mid + last)],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--voice", type=int, default=50)
    p.add_argument("--chat", type=int, default=5)
    p.add_argument("--round-s", type=float, default=40, help="seconds of audio per voice round")
    p.add_argument("--sample", type=float, default=30)
    p.add_argument("--out", type=Path, default=common.default_out("soak"))
    args = p.parse_args()
    result = asyncio.run(soak(args))
    common.write_json(args.out / "soak.json", result)
    print(json.dumps(result["verdict"], indent=1))


if __name__ == "__main__":
    main()
