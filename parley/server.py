"""The HTTP server: uvicorn's configuration and the order of shutdown.

``run(app, host, port)`` serves until SIGINT/SIGTERM (``parley serve``);
``serve_app(app)`` runs the app on a free 127.0.0.1 port inside the running event
loop (``parley chat --local``, tests).

Shutdown order. uvicorn, left alone, asks every connection to shut down — open
WebSockets are closed with 1012 — *before* the app's lifespan shutdown runs, so
nothing in the lifespan can still talk to a voice client. ``ParleyServer`` puts
its own step first:

1. stop accepting connections;
2. drain (``channels.services.drain``): no new sessions, ``go_away`` with its resume
   token to every voice connection, running turns finish (``Brain.drain``) and
   connections move away, for at most ``PARLEY_DRAIN_S`` seconds; what is still
   attached at the deadline ends ``SERVER_SHUTDOWN``;
3. uvicorn's own shutdown: connections closed, background tasks awaited, then the
   lifespan shutdown (coordinator, store, HTTP client).

"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import uvicorn

from parley.channels.ws_protocol import uvicorn_ws_options

log = logging.getLogger(__name__)

MAX_WS_MESSAGE = 1 << 20
Drain = Callable[[float], Awaitable[None]]  # the drain, given its deadline in seconds


def make_config(app: Any, **options: Any) -> uvicorn.Config:
    """uvicorn settings every Parley server uses (``options`` override them)."""
    values: dict[str, Any] = {
        "log_level": "warning",
        "lifespan": "on",
        "ws_max_size": MAX_WS_MESSAGE,
        **uvicorn_ws_options(),
        **options,
    }
    return uvicorn.Config(app, **values)


def app_drain(app: Any) -> Drain | None:
    """The drain step of a Parley app (``channels.services.drain``)."""
    services = getattr(getattr(app, "state", None), "services", None)
    if services is None:
        return None
    from parley.channels.services import drain

    async def run_drain(drain_s: float) -> None:
        await drain(services, drain_s)

    return run_drain


class ParleyServer(uvicorn.Server):
    """A uvicorn server that drains running turns before closing connections."""

    def __init__(self, config: uvicorn.Config, *, drain: Drain | None, drain_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_s = drain_s
        self.listening = asyncio.Event()  # set once it accepts connections

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM start the shutdown above; unlike uvicorn's own, the signal is
        not raised again afterwards, so a drained ``parley serve`` exits 0."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # 1. no new connections
        if self.drain is not None and not self.force_exit:
            # 2. go_away to voice clients, running turns finish and store their replies,
            # what is left at the deadline ends SERVER_SHUTDOWN
            try:
                async with asyncio.timeout(self.drain_s + 5.0):
                    await self.drain(self.drain_s)
            except TimeoutError:
                log.warning("drain: still busy after %.1f s; closing", self.drain_s)
        await super().shutdown(sockets)  # 3. connections, tasks, lifespan


def run(app: Any, host: str, port: int, *, drain_s: float = 10.0) -> None:
    """Serve ``app`` until SIGINT/SIGTERM."""
    config = make_config(app, host=host, port=port, timeout_graceful_shutdown=drain_s)
    ParleyServer(config, drain=app_drain(app), drain_s=drain_s).run()


@contextlib.asynccontextmanager
async def serve_app(
    app: Any, host: str = "127.0.0.1", *, drain_s: float = 1.0, **options: Any
) -> AsyncIterator[str]:
    """Start ``app`` on a free port of ``host`` in this event loop; yields its base
    URL; shuts it down (in the order above, with a short drain) on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = ParleyServer(make_config(app, **options), drain=app_drain(app), drain_s=drain_s)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign,attr-defined]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.005)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
