"""Run an ASGI app on a real socket (127.0.0.1, a free port) inside this event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from parley.channels.ws_protocol import uvicorn_ws_options


@contextlib.asynccontextmanager
async def serve_app(app: Any, host: str = "127.0.0.1", **config: Any) -> AsyncIterator[str]:
    """Start ``app`` with uvicorn; yields its base URL; stops it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {"ws_max_size": 1 << 20, **uvicorn_ws_options(), **config}
    cfg = uvicorn.Config(app, log_level="warning", lifespan="on", **options)
    server = uvicorn.Server(cfg)
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
