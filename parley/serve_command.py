"""``parley serve``: check what would fail, then listen, then say "ready".

Every start-up problem a newcomer can cause — a bad setting, an agent file, a data
directory that cannot be written, PostgreSQL or Redis down, a taken port, an LLM that
refuses the key — ends as one line on stderr and exit status 2, never a traceback. The
"ready" line is printed only once uvicorn is accepting connections on the socket bound
here (so a test or a script can wait for it).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any

from parley.config import ConfigError, load_settings, settings_warnings
from parley.startup_checks import StartupError, bind, check_data_dir, run_server_checks

EXIT_STARTUP = 2


def serve(host: str, port: int) -> int:
    """Run the server until interrupted; the exit status."""
    try:
        settings = load_settings()
        for warning in settings_warnings():
            print(f"parley: warning: {warning}", file=sys.stderr)
        problem = check_data_dir(settings)
        if problem:
            raise StartupError(problem)
        from parley.app import create_app

        app = create_app(settings)
        sock = bind(host, port)
    except (ConfigError, StartupError) as exc:
        print(f"parley: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    try:
        return asyncio.run(_run(app, sock, host, port))
    except KeyboardInterrupt:
        return 0
    finally:
        sock.close()


def _server_class() -> type[Any]:
    import uvicorn

    class ListeningServer(uvicorn.Server):
        """uvicorn's server with an event set once it accepts connections."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.listening = asyncio.Event()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                self.listening.set()

    return ListeningServer


async def _run(app: Any, sock: socket.socket, host: str, port: int) -> int:
    import uvicorn

    from parley.channels.ws_protocol import uvicorn_ws_options

    _Server = _server_class()
    services = app.state.services
    problem = await run_server_checks(services.settings, services.agents)
    if problem:
        print(f"parley: {problem}", file=sys.stderr)
        return EXIT_STARTUP
    logging.basicConfig(
        level=services.settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws_max_size=1 << 20,
        timeout_graceful_shutdown=10,
        **uvicorn_ws_options(),
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    ready = asyncio.create_task(server.listening.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if not server.started:
        await task
        print("parley: the server stopped during start-up (see the log above)", file=sys.stderr)
        return EXIT_STARTUP
    shown = f"[{host}]" if ":" in host else host
    port = sock.getsockname()[1]
    print(f"Parley ready on http://{shown}:{port}/  (API docs: /docs)", flush=True)
    await task
    return 0
