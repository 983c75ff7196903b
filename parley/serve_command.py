"""``parley serve``: check what would fail, then listen, then say "ready".

Every start-up problem a newcomer can cause — a bad setting, an agent file, a data
directory that cannot be written, PostgreSQL or Redis down, a taken port, an LLM that
refuses the key — ends as one line on stderr and exit status 2, never a traceback. The
"ready" line is printed only once uvicorn is accepting connections on the socket bound
here (so a test or a script can wait for it).
"""

from __future__ import annotations

import asyncio
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
        # the loop uvicorn would pick (uvloop when installed): the voice path's pacing and
        # per-session cost are measured on it
        from uvicorn._compat import asyncio_run
        from uvicorn.config import Config

        loop_factory = Config(app).get_loop_factory()
        return asyncio_run(_run(app, sock, host, port), loop_factory=loop_factory)
    except KeyboardInterrupt:
        return 0
    finally:
        sock.close()


async def _run(app: Any, sock: socket.socket, host: str, port: int) -> int:
    from parley import logs
    from parley.server import ParleyServer, app_drain, make_config

    services = app.state.services
    settings = services.settings
    problem = await run_server_checks(settings, services.agents)
    if problem:
        print(f"parley: {problem}", file=sys.stderr)
        return EXIT_STARTUP
    logs.configure(settings.log_level)
    config = make_config(app, timeout_graceful_shutdown=settings.drain_s + 5)
    server = ParleyServer(config, drain=app_drain(app), drain_s=settings.drain_s)
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
