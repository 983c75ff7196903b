"""Shared plumbing of the benchmark scripts: paths, the Parley server process, machine facts.

The benchmark harness (load client, Pipecat and null peers, fake-engine spec) lives
outside the project in ``../shared/bench`` (override with ``PARLEY_BENCH_HARNESS``);
``harness()`` imports its orchestrator module so the peers run with exactly its logic.
Nothing here writes into the harness directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
AGENTS_DIR = BENCH_DIR / "agents"
HARNESS = Path(os.environ.get("PARLEY_BENCH_HARNESS", ROOT.parent / "shared" / "bench")).resolve()
CACHE = Path.home() / ".cache" / "parley-bench"
CLIENT_PY = Path(os.environ.get("BENCH_PY", CACHE / "client-venv" / "bin" / "python"))
PIPECAT_PY = Path(os.environ.get("PIPECAT_PY", CACHE / "pipecat-venv" / "bin" / "python"))
PARLEY_PY = ROOT / ".venv" / "bin" / "python"
PARLEY_BIN = ROOT / ".venv" / "bin" / "parley"
PY_SPY = Path(os.environ.get("PY_SPY", CACHE / "client-venv" / "bin" / "py-spy"))

REDIS_URL = "redis://127.0.0.1:6379/0"
SERVER_CPU = 0
CLIENT_CPU = 1


def harness() -> Any:  # an untyped module outside the project
    """The shared ``run_bench`` module (its helpers and peer runner), imported in place."""
    if not (HARNESS / "run_bench.py").exists():
        raise SystemExit(f"benchmark harness not found at {HARNESS} (set PARLEY_BENCH_HARNESS)")
    if str(HARNESS) not in sys.path:
        sys.path.insert(0, str(HARNESS))
    return importlib.import_module("run_bench")


def check_venvs(*, peers: bool) -> None:
    """Fail early, naming the setup step, if a venv the run needs is missing."""
    needed = [(CLIENT_PY, "client"), (PARLEY_PY, "Parley (.venv)")]
    if peers:
        needed.append((PIPECAT_PY, "Pipecat peer"))
    for path, what in needed:
        if not path.exists():
            raise SystemExit(f"missing {what} interpreter {path}; see bench/README.md 'Setup'")


def pin(cpu: int, cmd: Sequence[str]) -> list[str]:
    """``taskset -c cpu cmd`` when taskset exists (it execs, so the PID is the command's)."""
    if shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *cmd]
    return list(cmd)


def raise_priority(nice: int) -> int:
    """Renice this process (children inherit it); returns the niceness now in effect.

    On a machine shared with other jobs, a negative niceness (root only) gives the
    benchmark's server and client nearly all of their cores' time, so foreign load only
    gets what they leave. The foreign CPU is still recorded for every run.

    With the kernel's autogroup scheduling on (``/proc/sys/kernel/sched_autogroup_enabled``),
    a niceness only ranks processes inside one session's group; each group gets an equal
    share of a core whatever its members' niceness. So this process also starts a session
    of its own (a new autogroup holding only the benchmark and what it starts) and gives
    that group the niceness. ``setsid`` fails for a process-group leader (a script started
    straight from an interactive shell): run it under ``setsid -w`` then.
    """
    if not nice:
        return os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        print(f"cannot set niceness {nice} (not root?); running at normal priority")
        return os.getpriority(os.PRIO_PROCESS, 0)
    if _autogroups_on():
        try:
            if os.getsid(0) != os.getpid():  # not already a session of its own
                os.setsid()
        except PermissionError:
            print(
                "autogroups are on and this is a process-group leader: the niceness only "
                "ranks it inside its shell's group; run under `setsid -w` for it to count"
            )
        else:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))
    return os.getpriority(os.PRIO_PROCESS, 0)


def _autogroups_on() -> bool:
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def autogroup() -> str | None:
    """This process's scheduling group and its niceness (``/proc/self/autogroup``)."""
    try:
        with open("/proc/self/autogroup") as f:
            return f.read().strip()
    except OSError:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM this one process, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class ParleyServer:
    """A running ``parley serve`` pinned to the server core."""

    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def parley_server(
    log_path: Path, *, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[ParleyServer]:
    """Start Parley (bench agents, fresh data dir, WARNING logs) and stop it afterwards."""
    port = port or free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="parley-bench-data-"))
    full_env = {
        **os.environ,
        "PARLEY_AGENTS_DIR": str(AGENTS_DIR),
        "PARLEY_DATA_DIR": str(data_dir),
        "PARLEY_LOG_LEVEL": "WARNING",
        "PARLEY_SESSION_RATE_LIMIT": "0",  # hundreds of sessions from one IP
        **(env or {}),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        cmd = pin(SERVER_CPU, [str(PARLEY_BIN), "serve", "--port", str(port)])
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
        server = ParleyServer(proc, port, data_dir, log_path)
        try:
            if not wait_port(port):
                raise RuntimeError(f"Parley did not start; see {log_path}")
            time.sleep(1.0)  # let start-up work (imports, migrations) finish
            yield server
        finally:
            stop_process(proc)
            shutil.rmtree(data_dir, ignore_errors=True)


PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one run (its Parley URL); dropped afterwards."""
    import asyncpg

    name = f"parley_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def store_env_async(store: str) -> AsyncIterator[dict[str, str]]:
    """Environment for Parley's store: ``sqlite`` (the data dir), ``postgres`` (a fresh
    database) or ``postgres+redis`` (plus the Redis coordinator)."""
    if store == "sqlite":
        yield {}
        return
    if store not in ("postgres", "postgres+redis"):
        raise SystemExit(f"unknown store {store!r}: sqlite, postgres or postgres+redis")
    async with fresh_postgres() as url:
        env = {"PARLEY_DATABASE_URL": url}
        if store == "postgres+redis":
            env["PARLEY_REDIS_URL"] = REDIS_URL
        yield env


@contextlib.contextmanager
def store_env(store: str) -> Iterator[dict[str, str]]:
    """``store_env_async`` for synchronous callers (no event loop running)."""
    loop = asyncio.new_event_loop()
    manager = store_env_async(store)
    try:
        yield loop.run_until_complete(manager.__aenter__())
    finally:
        loop.run_until_complete(manager.__aexit__(None, None, None))
        loop.close()


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / os.sysconf(
        "SC_CLK_TCK"
    )


def machine_busy_pct(secs: float = 2.0) -> float:
    """Machine-wide busy CPU over ``secs``, in % of one core."""
    a, t0 = machine_busy_seconds(), time.monotonic()
    time.sleep(secs)
    b, t1 = machine_busy_seconds(), time.monotonic()
    return 100.0 * (b - a) / (t1 - t0)


def wait_quiet(limit_pct: float, max_wait: float) -> float:
    """Wait (bounded) until the machine is quiet; returns the busy % last seen."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = machine_busy_pct()
        if busy <= limit_pct or time.monotonic() > deadline:
            if busy > limit_pct:
                print(f"  machine still busy ({busy:.0f}% of a core); measuring anyway", flush=True)
            return busy
        print(f"  machine busy ({busy:.0f}% of a core, not ours); waiting...", flush=True)
        time.sleep(5)


def _version(python: Path, package: str) -> str | None:
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or None


def machine_facts(*, peers: bool) -> dict[str, Any]:
    """Date, cores, CPU model and the versions that matter for the tables."""
    with open("/proc/cpuinfo") as f:
        models = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
    facts: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "cpu_model": models[0] if models else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "parley": _version(PARLEY_PY, "parley"),
        "uvicorn": _version(PARLEY_PY, "uvicorn"),
        "websockets (server)": _version(PARLEY_PY, "websockets"),
        "websockets (client)": _version(CLIENT_PY, "websockets"),
        "pinning": f"server taskset CPU{SERVER_CPU}, client taskset CPU{CLIENT_CPU}",
    }
    if peers:
        facts["pipecat-ai"] = _version(PIPECAT_PY, "pipecat-ai")
        facts["onnxruntime (peers)"] = _version(PIPECAT_PY, "onnxruntime")
    return facts


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def default_out(kind: str) -> Path:
    return Path(tempfile.gettempdir()) / "parley-bench" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
