"""What ``parley serve`` checks before it says "ready", and ``parley doctor`` reports.

Each check returns ``None`` (fine) or one line naming the setting to change, e.g.
``PARLEY_DATA_DIR: cannot write /srv/parley: permission denied``. No check raises for a
misconfiguration: the caller prints the line and exits with status 2 (``serve``) or
draws a ✗ (``doctor``). ``bind`` is the exception that proves the rule: it returns the
listening socket, which ``serve`` hands to uvicorn, so "address in use" is found before
anything else starts and the port cannot be taken between the check and the start.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import tempfile
from collections.abc import Mapping
from urllib.parse import urlsplit

from parley.config import AgentSpec, Settings
from parley.llm_probe import probe_llm

CONNECT_TIMEOUT_S = 10.0


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line to print."""


def check_data_dir(settings: Settings) -> str | None:
    """The data directory exists (or can be made) and a file can be written in it."""
    where = settings.data_dir.resolve()
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=where, prefix=".parley-write-test-"):
            pass
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        return f"PARLEY_DATA_DIR: cannot write {where}: {reason}"
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port``; ``StartupError`` if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # that say so, and accepted connections inherit it. With Nagle on, a small frame
    # sent right after another waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (another parley?); "
                "choose another with --port"
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise StartupError(
                f"not allowed to listen on port {port}; use a port above 1023 with --port"
            ) from None
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def describe_database(url: str) -> str:
    """The database URL without credentials, for messages."""
    if url.startswith("sqlite"):
        return "SQLite " + url.split(":///", 1)[-1]
    parts = urlsplit(url)
    return f"PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"


async def check_database(settings: Settings) -> str | None:
    """Open the database and bring its schema up to date, then close it again."""
    from parley.sessions.sql import SqlStore

    url = settings.effective_database_url
    store = SqlStore(url)
    try:
        await asyncio.wait_for(store.start(), CONNECT_TIMEOUT_S)
    except Exception as exc:
        setting = "PARLEY_DATABASE_URL" if settings.database_url else "PARLEY_DATA_DIR"
        return f"{setting}: cannot open {describe_database(url)}: {_one_line(exc)}"
    finally:
        await store.close()
    return None


async def check_redis(settings: Settings) -> str | None:
    """Ping Redis when ``PARLEY_REDIS_URL`` is set."""
    if not settings.redis_url:
        return None
    from parley.sessions.redis_coordinator import RedisCoordinator

    coordinator = RedisCoordinator(settings.redis_url, prefix=settings.redis_prefix)
    where = urlsplit(settings.redis_url)
    try:
        await asyncio.wait_for(coordinator.start(), CONNECT_TIMEOUT_S)
    except Exception as exc:
        target = f"{where.hostname}:{where.port or 6379}" if where.hostname else where.path
        cause = exc.__cause__ or exc
        return f"PARLEY_REDIS_URL: cannot reach Redis at {target}: {_one_line(cause)}"
    finally:
        await coordinator.close()
    return None


def uses_llm(agent: AgentSpec, settings: Settings) -> bool:
    """Whether this agent talks to ``PARLEY_LLM_BASE_URL`` (see ``app.make_llm``)."""
    if agent.engines.get("llm") == "fake":
        return False
    return agent.brain == "llm" or (agent.brain == "auto" and bool(settings.llm_base_url))


async def check_llm(settings: Settings, agents: Mapping[str, AgentSpec]) -> str | None:
    """One cheap call to the LLM, if any agent uses it."""
    if not settings.llm_base_url or not any(uses_llm(a, settings) for a in agents.values()):
        return None
    return await probe_llm(
        settings.llm_base_url,
        settings.llm_model,
        settings.llm_api_key,
        min(settings.llm_timeout_s, 15.0),
    )


async def run_server_checks(settings: Settings, agents: Mapping[str, AgentSpec]) -> str | None:
    """The checks ``serve`` makes after loading agents: the first problem, or None."""
    for problem in (
        check_data_dir(settings),
        await check_database(settings),
        await check_redis(settings),
        await check_llm(settings, agents),
    ):
        if problem:
            return problem
    return None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:g} s"
    cause: BaseException | None = exc
    while cause is not None:  # the OS's reason, e.g. "connection refused", if there is one
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
