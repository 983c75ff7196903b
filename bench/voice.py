"""Voice benchmark: Parley's ``/v1/voice`` under the shared load client, beside the peers.

    .venv/bin/python bench/voice.py --quick                 # Parley, N = 1, 10, 50
    .venv/bin/python bench/voice.py --with-peers            # + Pipecat and the null peer
    .venv/bin/python bench/voice.py --vad silero --with-peers
    .venv/bin/python bench/voice.py --ns "" --no-idle --profile 100    # only a py-spy profile
    .venv/bin/python bench/voice.py --endpoint both --keep-going    # + /v1/realtime, turn about
    .venv/bin/python bench/voice.py --turn silence,smart,smart-model --smart-turn-model PATH

For each target and N: Parley (``parley serve``, agent ``bench`` = the fake engines of
the shared spec, pinned to CPU 0 with a fresh data dir and WARNING logs) or a peer is
started, the shared load client runs pinned to CPU 1, the server is stopped. N grows
until more than 20% of the sessions fail or have a playback gap, or p50 latency exceeds
3x the floor (the harness's rule, applied also to runs with foreign load).
An idle run (every session streams silence) gives the cost of a connected session.

``--turn`` (energy VAD only) picks the end-of-turn mode of the Parley agent:
``silence`` (``bench``, the shared spec), ``smart`` (``bench_smart``: the same 0.2 s stop
decided by the smart detector; no partials from the fake STT), ``smart-model`` (the
same agent with the Smart Turn model loaded from ``--smart-turn-model``: one model
decision per turn, which does not delay the reply) and ``smart-wait`` (``bench_smart_wait``
with the model: the model's answer ends each turn, so its time shows as latency).
Peers run through the harness's own ``run_bench`` logic, imported, with results
written under ``--out`` (never into the harness directory).

``--endpoint realtime|both`` drives the same script through the OpenAI-Realtime-compatible
``/v1/realtime`` (target ``parley-realtime``; the load client's frames carried as Realtime
events by ``bench/realtime_client.py``).

Prints one table: added latency (response latency minus the 640 ms floor), barge-in
(speech onset -> ``interrupted`` / ``clear``), sessions with gaps, CPU and RSS per
session (steady CPU %, and the server's CPU seconds over the whole run per session, with
the sessions one core carries at that cost), idle cost, and the foreign CPU the machine
showed during each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import _profile

START_FRAME = '{{"type":"start","agent":"{agent}","sample_rate":16000}}'
PARLEY_TARGETS = {
    "parley": "bench",
    "parley-silero": "bench_silero",
    # the same agents through the OpenAI-Realtime-compatible endpoint (bench/realtime_client.py)
    "parley-realtime": "bench",
    "parley-silero-realtime": "bench_silero",
    "parley-smart": "bench_smart",
    "parley-smart-model": "bench_smart",
    "parley-smart-wait": "bench_smart_wait",
}
TURN_TARGETS = {
    "silence": "parley",
    "smart": "parley-smart",
    "smart-model": "parley-smart-model",
    "smart-wait": "parley-smart-wait",
}
MODEL_TARGETS = {"parley-smart-model", "parley-smart-wait"}  # served with the Smart Turn model
PEERS = {"energy": ["pipecat", "null"], "silero": ["pipecat-silero", "null-silero"]}
FULL_NS = "1,10,50,100,200,400"
QUICK_NS = "1,10,50"

Result = dict[str, Any]


# --- one Parley run --------------------------------------------------------------------


def client_command(
    args: argparse.Namespace,
    n: int,
    script: str,
    pid: int,
    port: int,
    agent: str,
    out: Path,
    floor: dict[str, Any],
    realtime: bool = False,
) -> list[str]:
    duration = args.duration if script == "full" else args.idle_duration
    if realtime:  # the same load client, its frames carried as Realtime events
        wire = [
            str(common.BENCH_DIR / "realtime_client.py"),
            "--url",
            f"ws://127.0.0.1:{port}/v1/realtime?model={agent}",
        ]
    else:
        wire = [
            str(common.HARNESS / "loadclient.py"),
            "--url",
            f"ws://127.0.0.1:{port}/v1/voice",
            "--start-json",
            START_FRAME.format(agent=agent),
        ]
    return common.pin(common.CLIENT_CPU, [
        str(common.CLIENT_PY), *wire,
        "--sessions", str(n), "--duration", str(duration), "--ramp", str(args.ramp),
        "--script", script, "--pid", str(pid),
        "--floor-ms", str(floor["total_ms"]),
        "--barge-floor-ms", str(floor["barge_in_floor_ms"]),
        "--reply-secs", str(floor["reply_audio_secs"]),
        "--label", out.stem, "--out", str(out), "--quiet",
    ])  # fmt: skip


def run_parley_once(
    args: argparse.Namespace,
    target: str,
    n: int,
    script: str,
    floor: dict[str, Any],
    profile: bool = False,
) -> Result | None:
    tag = f"{target}-{script}-N{n}" + ("-profile" if profile else "")
    busy_before = common.wait_quiet(args.quiet_pct, args.quiet_wait)
    out = args.out / "raw" / f"{tag}.json"
    out.unlink(missing_ok=True)  # never read a stale result
    log = args.out / "logs" / f"{tag}.log"
    with (
        common.store_env(args.store) as env,
        common.parley_server(log, env={**env, **model_env(args, target)}) as server,
    ):
        agent, realtime = PARLEY_TARGETS[target], target.endswith("-realtime")
        cmd = client_command(args, n, script, server.pid, server.port, agent, out, floor, realtime)
        collapsed = args.out / "profiles" / f"{tag}.txt"
        recording = _profile.recording(collapsed, server.pid) if profile else nullcontext()
        t0, cpu0 = time.monotonic(), common.proc_cpu_seconds(server.pid)
        try:
            with recording:
                subprocess.run(
                    cmd, timeout=args.run_timeout, check=False, stdout=subprocess.DEVNULL
                )
        except subprocess.TimeoutExpired:
            print(f"[{tag}] client timed out", flush=True)
            return None
        time.sleep(1.0)  # the closed sessions' ends (store writes) count too
        run_cpu = common.proc_cpu_seconds(server.pid) - cpu0
        if server.proc.poll() is not None:
            print(f"[{tag}] server exited ({server.proc.returncode}) during the run", flush=True)
    if not out.exists():
        print(f"[{tag}] no result", flush=True)
        return None
    result: Result = json.loads(out.read_text())
    result["system"]["busy_before_start_pct_of_one_core"] = round(busy_before, 1)
    # CPU time of the whole run (connect, script, close), per session: the work done,
    # whenever a contended core let it run (less sensitive to foreign load than CPU %)
    result["server"]["run_cpu_s"] = round(run_cpu, 2)
    result["server"]["cpu_s_per_session"] = round(run_cpu / n, 4)
    common.write_json(out, result)
    print(f"[{tag}] {one_line(result)}  wall {time.monotonic() - t0:.0f}s", flush=True)
    return result


def model_env(args: argparse.Namespace, target: str) -> dict[str, str]:
    """The server's Smart Turn setting: the model file for the model targets only
    (``main`` drops an inherited PARLEY_SMART_TURN_MODEL)."""
    if target in MODEL_TARGETS:
        return {"PARLEY_SMART_TURN_MODEL": str(args.smart_turn_model)}
    return {}


def run_parley(
    args: argparse.Namespace, target: str, n: int, script: str, floor: dict[str, Any]
) -> Result | None:
    """One measured run, repeated (``--retries``) while foreign load contaminates it."""
    result = None
    for attempt in range(1 + args.retries):
        result = run_parley_once(args, target, n, script, floor)
        if result is None or not result["system"].get("contaminated") or attempt == args.retries:
            break
        print(
            f"[{target} N={n}] foreign load "
            f"({result['system'].get('other_processes_steady_pct')}% of a core); "
            f"retry {attempt + 1}/{args.retries}",
            flush=True,
        )
    if result is not None:
        result["system"]["attempts"] = attempt + 1
    return result


def one_line(r: Result) -> str:
    s, srv = r["summary"], r.get("server", {})
    over = s.get("resp1_overhead_ms") or {}
    return (
        f"ok {s['ok']}/{s['sessions']} gaps {s['gap_sessions']} "
        f"added p50 {over.get('p50')} p95 {over.get('p95')} "
        f"cpu {srv.get('cpu_steady_pct')}% ({srv.get('cpu_steady_per_session_pct')}/session) "
        f"foreign {r['system'].get('other_processes_steady_pct')}%"
    )


# --- profiling (py-spy) ----------------------------------------------------------------


def run_profile(args: argparse.Namespace, target: str, floor: dict[str, Any]) -> None:
    n, script = args.profile, args.profile_script
    run_parley_once(args, target, n, script, floor, profile=True)
    _profile.report(args.out / "profiles" / f"{target}-{script}-N{n}-profile.txt")


# --- peers, through the harness ------------------------------------------------------------


def harness_args(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(
        duration=args.duration,
        idle_duration=args.idle_duration,
        ramp=args.ramp,
        pin=True,
        run_timeout=args.run_timeout,
        quiet_pct=args.quiet_pct,
        quiet_wait=args.quiet_wait,
        retries=args.retries,
        port=common.free_port(),
    )


def peer_runner(args: argparse.Namespace, floor: dict[str, Any]) -> Callable[..., Result | None]:
    rb = common.harness()
    rb.RES = str(args.out / "peers")  # keep the harness directory untouched
    hargs = harness_args(args)

    def run(target: str, n: int, script: str) -> Result | None:
        res: Result | None = rb.run_until_clean(target, n, script, hargs, floor)
        if res is not None:
            print(f"[{target}-{script}-N{n}] {one_line(res)}", flush=True)
        return res

    return run


# --- the sweep -----------------------------------------------------------------------


def sweep(
    run: Callable[[str, int, str], Result | None],
    targets: list[str],
    ns: list[int],
    args: argparse.Namespace,
    broke: Callable[[Result], bool],
) -> dict[str, list[Result]]:
    """Full runs at increasing N until one breaks, then the idle run. Several targets
    take turns at each N, so the runs compared are minutes apart at most."""
    results: dict[str, list[Result]] = {target: [] for target in targets}
    going = list(targets)
    for n in ns:
        for target in list(going):
            res = run(target, n, "full")
            if res is None:
                going.remove(target)
                continue
            results[target].append(res)
            if broke(res) and not args.keep_going:
                print(f"[{target}] broke at N={n}; not increasing N", flush=True)
                going.remove(target)
    for target in targets:
        if args.idle_n:
            res = run(target, args.idle_n, "silence")
            if res is not None:
                results[target].append(res)
    return results


def saturated(res: Result, floor: dict[str, Any]) -> bool:
    """The harness's stop rule (> 20% of sessions failed or gapped, or p50 latency
    over 3x the floor), applied even to runs with foreign load: with ``--nice`` they
    are attributable, and without it a busy machine would never stop the sweep."""
    s = res["summary"]
    if s["failed_or_gaps"] > 0.2 * s["sessions"]:
        return True
    p50 = (s.get("resp1_ms") or {}).get("p50")
    return p50 is not None and p50 > 3 * floor["total_ms"]


def table_rows(target: str, runs: list[Result]) -> list[list[object]]:
    rows: list[list[object]] = []
    f = common.fmt
    for r in runs:
        s, srv, sy = r["summary"], r.get("server", {}), r.get("system", {})
        foreign = f(sy.get("other_processes_steady_pct")) + ("*" if sy.get("contaminated") else "")
        if r["config"]["script"] != "full":
            rows.append(
                [
                    target,
                    f"{s['sessions']} idle",
                    f"{s['ok']}/{s['failed']}/-",
                    "",
                    "",
                    "",
                    f(srv.get("cpu_steady_pct")),
                    "",
                    f(srv.get("cpu_s_per_session"), 3),
                    "",
                    "",
                    "",
                    f(srv.get("cpu_steady_per_session_pct"), 3),
                    f(srv.get("rss_per_session_kb")),
                    foreign,
                ]
            )
            continue
        over, barge = s.get("resp1_overhead_ms") or {}, s.get("clear_ms") or {}
        missed = f" ({s['barge_missed']} missed)" if s.get("barge_missed") else ""
        rows.append(
            [
                target,
                s["sessions"],
                f"{s['ok']}/{s['failed']}/{s['gap_sessions']}{missed}",
                " / ".join(f(over.get(p)) for p in ("p50", "p95", "p99")),
                " / ".join(f(barge.get(p)) for p in ("p50", "p95")),
                f((s.get("max_gap_ms") or {}).get("max")),
                f(srv.get("cpu_steady_pct")),
                f(srv.get("cpu_steady_per_session_pct"), 2),
                f(srv.get("cpu_s_per_session"), 3),
                f(per_core(srv.get("cpu_s_per_session"), r["config"]["duration"])),
                f(srv.get("rss_connected_mb")),
                f(srv.get("rss_per_session_kb")),
                "",
                "",
                foreign,
            ]
        )
    return rows


def per_core(cpu_s_per_session: float | None, session_secs: float) -> float | None:
    """Concurrent sessions one core carries: a session of ``session_secs`` that costs
    ``cpu_s_per_session`` CPU seconds (the whole run's CPU time per session)."""
    if not cpu_s_per_session or cpu_s_per_session <= 0:
        return None
    return session_secs / cpu_s_per_session


HEADERS = [
    "target",
    "N",
    "ok/fail/gap sessions",
    "added latency p50 / p95 / p99 ms",
    "barge-in → interrupted p50 / p95 ms",
    "max gap ms",
    "server CPU %",
    "CPU %/session",
    "CPU s/session (run)",
    "sessions/core",
    "RSS MB",
    "RSS KB/session",
    "idle CPU %/session",
    "idle RSS KB/session",
    "foreign CPU %",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ns", default=None, help=f"session counts (default {FULL_NS})")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"N = {QUICK_NS}, idle N = 20, no retries, short quiet wait",
    )
    p.add_argument("--vad", choices=["energy", "silero", "both"], default="energy")
    p.add_argument(
        "--turn",
        default="silence",
        help="end-of-turn modes of the energy-VAD agent, comma-separated: "
        f"{', '.join(TURN_TARGETS)} (default silence)",
    )
    p.add_argument(
        "--smart-turn-model",
        type=Path,
        default=None,
        help="Smart Turn v3 .onnx for --turn smart-model / smart-wait (server needs onnxruntime)",
    )
    p.add_argument(
        "--store",
        default="sqlite",
        choices=["sqlite", "postgres", "postgres+redis"],
        help="Parley's session store (postgres: a fresh database per run)",
    )
    p.add_argument(
        "--endpoint",
        choices=["voice", "realtime", "both"],
        default="voice",
        help="Parley's /v1/voice, its OpenAI-Realtime-compatible /v1/realtime "
        "(target parley-realtime), or both, taking turns at each N",
    )
    p.add_argument("--with-peers", action="store_true", help="also Pipecat and the null peer")
    p.add_argument("--peer-ns", default=None, help="session counts for the null peers")
    p.add_argument(
        "--pipecat-ns",
        default=None,
        help="session counts for Pipecat (default: 1,10,20,30,50 capped by --ns)",
    )
    p.add_argument("--idle-n", type=int, default=50, help="sessions in the idle run (0: skip)")
    p.add_argument("--no-idle", action="store_true")
    p.add_argument("--duration", type=float, default=14.0)
    p.add_argument("--idle-duration", type=float, default=8.0)
    p.add_argument("--ramp", type=float, default=3.0)
    p.add_argument("--run-timeout", type=float, default=120.0)
    p.add_argument(
        "--quiet-pct",
        type=float,
        default=8.0,
        help="wait until machine-wide busy CPU is below this (%% of one core)",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="longest wait for quiet before measuring anyway (foreign CPU is recorded)",
    )
    p.add_argument("--retries", type=int, default=1, help="re-runs of a run hit by foreign load")
    p.add_argument("--keep-going", action="store_true", help="run every N even after a break")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the sweep, one extra Parley run at N under py-spy (not tabled)",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for this process and every server/client it starts "
        "(e.g. -15 on a shared machine; needs root)",
    )
    p.add_argument(
        "--profile-script",
        choices=["full", "silence"],
        default="full",
        help="what the profiled sessions do (silence: the per-frame cost alone)",
    )
    p.add_argument("--out", type=Path, default=None, help="results directory (default /tmp)")
    args = p.parse_args(argv)
    if args.quick:
        args.ns = QUICK_NS if args.ns is None else args.ns
        args.idle_n = 20 if args.idle_n == 50 else args.idle_n
        args.retries = 0
        args.quiet_wait = min(args.quiet_wait, 30.0)
    # --ns "" means no ladder at all (e.g. only a profile), not the default ladder
    args.ns = [int(x) for x in (FULL_NS if args.ns is None else args.ns).split(",") if x]
    args.peer_ns = [int(x) for x in args.peer_ns.split(",") if x] if args.peer_ns else args.ns
    default_pipecat = [n for n in (1, 10, 20, 30, 50) if n <= max(args.ns, default=0)]
    args.pipecat_ns = (
        [int(x) for x in args.pipecat_ns.split(",") if x] if args.pipecat_ns else default_pipecat
    )
    if args.no_idle:
        args.idle_n = 0
    args.turn = [t for t in args.turn.split(",") if t]
    unknown = [t for t in args.turn if t not in TURN_TARGETS]
    if unknown:
        p.error(f"--turn: unknown mode(s) {unknown}; choose from {list(TURN_TARGETS)}")
    if any(TURN_TARGETS[t] in MODEL_TARGETS for t in args.turn):
        if args.smart_turn_model is None or not args.smart_turn_model.is_file():
            p.error("--turn smart-model / smart-wait need --smart-turn-model FILE")
        args.smart_turn_model = args.smart_turn_model.resolve()
    args.out = (args.out or common.default_out("voice")).resolve()
    return args


def parley_targets(vad: str, endpoint: str, turns: list[str]) -> list[str]:
    """The Parley targets of one sweep: each turn-taking mode over /v1/voice (energy
    VAD; Silero runs silence mode only), and/or the silence mode over /v1/realtime."""
    base = "parley" if vad == "energy" else "parley-silero"
    voice = [TURN_TARGETS[t] for t in turns] if vad == "energy" else [base]
    return {"voice": voice, "realtime": [f"{base}-realtime"]}.get(
        endpoint, [*voice, f"{base}-realtime"]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.pop("PARLEY_SMART_TURN_MODEL", None)  # only the model targets get one
    common.check_venvs(peers=args.with_peers)
    rb = common.harness()
    floor = rb.floor()
    vads = ["energy", "silero"] if args.vad == "both" else [args.vad]
    facts = common.machine_facts(peers=args.with_peers)
    facts["niceness"] = common.raise_priority(args.nice)
    facts["autogroup"] = common.autogroup()
    print(json.dumps(facts, indent=1), f"\nresults in {args.out}", flush=True)

    def broke(res: Result) -> bool:
        return saturated(res, floor)

    runs: dict[str, list[Result]] = {}
    for vad in vads:
        targets = parley_targets(vad, args.endpoint, args.turn)
        runs |= sweep(
            lambda t, n, s: run_parley(args, t, n, s, floor), targets, args.ns, args, broke
        )
        if args.with_peers:
            run_peer = peer_runner(args, floor)
            for peer in PEERS[vad]:
                ns = args.pipecat_ns if peer.startswith("pipecat") else args.peer_ns
                runs |= sweep(run_peer, [peer], ns, args, broke)
    rows = [row for target, results in runs.items() for row in table_rows(target, results)]
    table = common.md_table(HEADERS, rows)
    common.write_json(args.out / "summary.json", {"machine": facts, "floor": floor, "runs": runs})
    (args.out / "table.md").write_text(table + "\n")
    print(
        f"\nfloor {floor['total_ms']:.0f} ms; barge-in floor {floor['barge_in_floor_ms']:.0f} ms;"
        " * = foreign load > 10% of a core during the run\n"
    )
    print(table, flush=True)
    if args.profile:
        for vad in vads:
            for target in parley_targets(vad, args.endpoint):
                run_profile(args, target, floor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
