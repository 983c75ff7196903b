"""py-spy profiles of a running server: record while a block runs, then summarise.

py-spy (from the client venv, pinned to the client's core) samples the server's
on-CPU stacks at 200 Hz into py-spy's "raw" (collapsed stacks) format, without line
numbers so samples add up per function. ``summarize`` turns that file into the
functions with the largest self and inclusive shares of the sampled CPU time.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import _common as common

RATE_HZ = 200

# Where a sample's time went: the first area (in this order) with a frame in the stack.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("store (SQLAlchemy, sqlite3/asyncpg, parley.sessions)",
     ("sqlalchemy/", "asyncpg/", "parley/sessions/", "SqliteRunner")),
    ("GC", ("gc_collect", "(gc)")),
    ("audio in: VAD, turn-taking, framing (VoiceSession.feed_audio)", ("feed_audio",)),
    ("audio out: pacing + WebSocket sends (AudioPump, send_audio)",
     ("AudioPump", "send_audio")),
    ("turn: brain, LLM/TTS fakes, Response, JSON events",
     ("parley/brain/", "Response.", "FakeLLM", "FakeTTS", "send_json", "text_sync", "browser_wire", "chunker")),
    ("WebSocket receive + ASGI plumbing (uvicorn, websockets, starlette)",
     ("websockets/", "uvicorn/protocols", "starlette/", "fastapi/", "_receive_loop")),
    ("HTTP/SSE (chat)", ("httptools_impl", "sse", "StreamingResponse")),
    ("event loop itself (uvloop/asyncio: I/O, scheduling)", ("asyncio/", "Runner.run")),
)  # fmt: skip


@contextlib.contextmanager
def recording(collapsed: Path, pid: int) -> Iterator[None]:
    """Record ``pid`` into ``collapsed`` while the block runs (skipped without py-spy)."""
    if not common.PY_SPY.exists():
        print(f"py-spy not found at {common.PY_SPY}; no profile", flush=True)
        yield
        return
    collapsed.parent.mkdir(parents=True, exist_ok=True)
    cmd = common.pin(common.CLIENT_CPU, [
        str(common.PY_SPY), "record", "--pid", str(pid), "--rate", str(RATE_HZ),
        "--format", "raw", "--nolineno", "--output", str(collapsed), "--nonblocking",
    ])  # fmt: skip
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)  # like Ctrl-C: py-spy writes what it sampled
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            common.stop_process(spy)


def summarize(collapsed: Path, top: int = 25) -> str:
    """Self and inclusive shares of the sampled CPU time, per function."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    area_counts: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        total += count
        if frames:
            self_counts[frames[-1]] += count
        for frame in set(frames):
            incl_counts[frame] += count
        area_counts[area_of(frames)] += count
    if not total:
        return f"{collapsed.name}: no samples"
    lines = [f"{collapsed.name}: {total} samples (on-CPU, {RATE_HZ} Hz)", "", "area %  area"]
    lines += [f"{100 * c / total:6.1f}  {a}" for a, c in area_counts.most_common()]
    lines += ["", "self %  function"]
    lines += [f"{100 * c / total:6.1f}  {f}" for f, c in self_counts.most_common(top)]
    lines += ["", "incl %  function"]
    lines += [f"{100 * c / total:6.1f}  {f}" for f, c in incl_counts.most_common(top * 2)]
    return "\n".join(lines)


def area_of(frames: list[str]) -> str:
    for area, needles in AREAS:
        if any(needle in frame for frame in frames for needle in needles):
            return area
    return "other"


def report(collapsed: Path) -> None:
    """Write ``<name>-top.txt`` beside the profile and print it."""
    if not collapsed.exists() or not collapsed.stat().st_size:
        print(f"no profile written ({collapsed})", flush=True)
        return
    text = summarize(collapsed)
    collapsed.with_name(collapsed.stem + "-top.txt").write_text(text + "\n")
    print(text, flush=True)
