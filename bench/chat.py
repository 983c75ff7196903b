"""Chat benchmark: turns per second and server CPU per turn over HTTP + SSE.

    .venv/bin/python bench/chat.py --quick          # N = 1, 10 on every configuration
    .venv/bin/python bench/chat.py --ns 1,10,50,100 --configs sqlite-rules,postgres-rules

Parley (``parley serve``) runs pinned to CPU 0 with a fresh data dir (SQLite) or a fresh
PostgreSQL database (``PARLEY_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/
<fresh>``, dropped afterwards); this process pins itself to CPU 1 and drives N concurrent
sessions with ``parley.client.ParleyClient``. Each session sends one message after
another (the next one as soon as the SSE stream of the previous turn ends) for
``--duration`` seconds after a warm-up turn; after ``--turns-per-session`` turns (10)
the conversation starts over in a new session, so histories stay conversation-sized
(the cost of a turn grows with the history it reads).

Configurations: ``<store>-<brain>`` with store ``sqlite``, ``postgres`` or
``postgres+redis`` (Redis coordinator) and brain ``rules`` (the demo agent, rules
brain) or ``fake`` (agent ``bench``: the benchmark's fake LLM, 200 ms to the first
token then 60 word-tokens 10 ms apart, so a turn cannot be shorter than 790 ms).

Reported per configuration and N: turns/s, turn latency p50/p95 (request to the end of
the stream), server CPU ms per turn (``/proc`` utime+stime over the window / turns),
server CPU %, client CPU % (a saturated client would cap the numbers), errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import _profile

ROOT = common.ROOT
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402  (from Parley's venv)

from parley.client import ApiFailure, ParleyClient  # noqa: E402

STORES = ("sqlite", "postgres", "postgres+redis")
BRAINS = {"rules": "demo", "fake": "bench"}
RULES_MESSAGES = (
    "when are you open?",
    "where are you?",
    "are you open on monday?",
    "what is the address?",
)
FAKE_MESSAGES = ("I would like to book a table for two tonight",)
DEFAULT_CONFIGS = "sqlite-rules,postgres-rules,sqlite-fake,postgres-fake"


@dataclass
class Load:
    """What N sessions did during the measured window."""

    latencies_ms: list[float] = field(default_factory=list)
    events: int = 0
    errors: list[str] = field(default_factory=list)
    error_events: Counter[str] = field(default_factory=Counter)
    conversations: int = 0  # sessions created during the window


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the server side -----------------------------------------------------------------


async def postgres_backend_pids(database_url: str | None) -> list[int]:
    """PIDs of the PostgreSQL backends serving the run's database (their CPU is the
    store's share that ``/proc/<server pid>`` does not see)."""
    if not database_url:
        return []
    import asyncpg

    database = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(common.PG_ADMIN_DSN)
    try:
        rows = await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await admin.close()
    return [int(r["pid"]) for r in rows]


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            out[pid] = common.proc_cpu_seconds(pid)
    return out


# --- the client side -------------------------------------------------------------------


async def one_turn(client: ParleyClient, text: str, load: Load | None = None) -> int:
    """Send one message and read its SSE stream to the end; returns the event count."""
    events = 0
    async for event in client.send(text):
        events += 1
        if event.event == "error" and load is not None:
            load.error_events[str(event.data.get("code"))] += 1
    return events


@dataclass(frozen=True)
class Workload:
    agent: str
    sessions: int
    duration: float
    turns_per_session: int  # then the conversation starts over in a new session (0: never)


async def drive(
    base_url: str, work: Workload, pid: int, database_url: str | None, profile: Path | None
) -> dict[str, Any]:
    agent, n = work.agent, work.sessions
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    http = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=30.0), limits=limits)
    clients = [ParleyClient(base_url, http=http) for _ in range(n)]
    messages = RULES_MESSAGES if agent == "demo" else FAKE_MESSAGES
    try:
        sem = asyncio.Semaphore(20)

        async def create(c: ParleyClient) -> None:
            async with sem:
                await c.create_session(agent)
                await one_turn(c, messages[0])  # warm-up turn, not measured

        await asyncio.gather(*(create(c) for c in clients))
        load = Load()
        stop_at = time.monotonic() + work.duration
        cpu0, me0 = common.proc_cpu_seconds(pid), common.proc_cpu_seconds(os.getpid())
        db0 = cpu_of(await postgres_backend_pids(database_url))
        busy0, t0 = common.machine_busy_seconds(), time.monotonic()

        async def session_loop(c: ParleyClient, offset: int) -> None:
            turns_here = 1  # the warm-up turn
            for text in itertools.islice(itertools.cycle(messages), offset, None):
                if time.monotonic() >= stop_at:
                    return
                if work.turns_per_session and turns_here >= work.turns_per_session:
                    await c.create_session(agent)  # a new conversation (its cost counts)
                    load.conversations += 1
                    turns_here = 0
                turns_here += 1
                started = time.monotonic()
                try:
                    events = await one_turn(c, text, load)
                    load.events += events  # not `+= await`: that would lose concurrent adds
                    load.latencies_ms.append((time.monotonic() - started) * 1000)
                except (ApiFailure, httpx.HTTPError) as exc:
                    load.errors.append(f"{type(exc).__name__}: {exc}")

        with _profile.recording(profile, pid) if profile else contextlib.nullcontext():
            await asyncio.gather(*(session_loop(c, i) for i, c in enumerate(clients)))
        elapsed = time.monotonic() - t0
        cpu = common.proc_cpu_seconds(pid) - cpu0
        me = common.proc_cpu_seconds(os.getpid()) - me0
        busy = common.machine_busy_seconds() - busy0
        db1 = cpu_of(await postgres_backend_pids(database_url))
        db = sum(v - db0.get(p, 0.0) for p, v in db1.items())
        result = summarize(load, n, elapsed, cpu, me, common.proc_rss_kb(pid))
        result["db_cpu_ms_per_turn"] = round(1000 * db / result["turns"], 2) if db1 else None
        result["foreign_cpu_pct"] = round(100 * (busy - cpu - me - db) / elapsed, 1)
        return result
    finally:
        await http.aclose()


def summarize(
    load: Load, n: int, elapsed: float, cpu: float, client_cpu: float, rss_kb: int
) -> dict[str, Any]:
    turns = len(load.latencies_ms)
    return {
        "sessions": n,
        "turns": turns,
        "turns_per_s": round(turns / elapsed, 1),
        "latency_p50_ms": percentile(load.latencies_ms, 0.5),
        "latency_p95_ms": percentile(load.latencies_ms, 0.95),
        "server_cpu_ms_per_turn": round(1000 * cpu / turns, 2) if turns else None,
        "server_cpu_pct": round(100 * cpu / elapsed, 1),
        "client_cpu_pct": round(100 * client_cpu / elapsed, 1),
        "events_per_turn": round(load.events / turns, 1) if turns else None,
        "server_rss_mb": round(rss_kb / 1024, 1),
        "new_sessions": load.conversations,
        "errors": len(load.errors) + sum(load.error_events.values()),
        "error_samples": sorted(set(load.errors))[:5] + sorted(load.error_events.items()),
        "elapsed_s": round(elapsed, 2),
    }


# --- orchestration ---------------------------------------------------------------------


async def run_config(config: str, ns: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    store, _, brain = config.rpartition("-")
    if store not in STORES or brain not in BRAINS:
        raise SystemExit(f"unknown configuration {config!r}: <{'|'.join(STORES)}>-<rules|fake>")
    results = []
    for n in ns:
        busy = await asyncio.to_thread(common.wait_quiet, args.quiet_pct, args.quiet_wait)
        async with common.store_env_async(store) as env:
            log = args.out / "logs" / f"{config}-N{n}.log"
            with common.parley_server(log, env=env) as srv:
                base = f"http://127.0.0.1:{srv.port}"
                collapsed = args.out / "profiles" / f"{config}-N{n}.txt" if args.profile else None
                work = Workload(BRAINS[brain], n, args.duration, args.turns_per_session)
                url = env.get("PARLEY_DATABASE_URL")
                res = await drive(base, work, srv.pid, url, collapsed)
        if collapsed is not None:
            _profile.report(collapsed)
        res.update(config=config, busy_before_pct=round(busy, 1))
        print(f"[{config} N={n}] {json.dumps(res)}", flush=True)
        results.append(res)
    return results


HEADERS = [
    "configuration",
    "N",
    "turns/s",
    "latency p50 / p95 ms",
    "server CPU ms/turn",
    "PostgreSQL CPU ms/turn",
    "server CPU %",
    "client CPU %",
    "events/turn",
    "RSS MB",
    "errors",
    "foreign CPU %",
]


def table(results: list[dict[str, Any]]) -> str:
    f = common.fmt
    rows = [
        [
            r["config"],
            r["sessions"],
            f(r["turns_per_s"], 1),
            f"{f(r['latency_p50_ms'])} / {f(r['latency_p95_ms'])}",
            f(r["server_cpu_ms_per_turn"], 2),
            f(r["db_cpu_ms_per_turn"], 2),
            f(r["server_cpu_pct"]),
            f(r["client_cpu_pct"]),
            f(r["events_per_turn"]),
            f(r["server_rss_mb"]),
            r["errors"],
            f(r["foreign_cpu_pct"]),
        ]
        for r in results
    ]
    return common.md_table(HEADERS, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ns", default="1,10,50")
    p.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="comma list of <sqlite|postgres|postgres+redis>-<rules|fake>",
    )
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--quick", action="store_true", help="N = 1, 10; 5 s per run")
    p.add_argument("--quiet-pct", type=float, default=8.0)
    p.add_argument("--quiet-wait", type=float, default=60.0)
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this process and every server/client it starts "
        "(e.g. -15 on a shared machine; needs root)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="record each run's server with py-spy (perturbs the numbers a little)",
    )
    p.add_argument(
        "--turns-per-session",
        type=int,
        default=10,
        help="turns before a conversation starts over in a new session (0: never); "
        "the cost of a turn grows with the history it reads",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.ns, args.duration = "1,10", 5.0
    args.ns = [int(x) for x in args.ns.split(",") if x]
    args.out = (args.out or common.default_out("chat")).resolve()
    return args


async def amain(args: argparse.Namespace) -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {common.CLIENT_CPU})  # the client side; the server gets CPU 0
    facts = common.machine_facts(peers=False)
    facts["niceness"] = common.raise_priority(args.nice)
    print(json.dumps(facts, indent=1), f"\nresults in {args.out}", flush=True)
    results = []
    for config in [c for c in args.configs.split(",") if c]:
        results += await run_config(config, args.ns, args)
    common.write_json(args.out / "summary.json", {"machine": facts, "runs": results})
    text = table(results)
    (args.out / "table.md").write_text(text + "\n")
    print("\n" + text, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
