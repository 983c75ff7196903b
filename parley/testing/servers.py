"""Run an ASGI app on a real socket (127.0.0.1, a free port) inside this event loop.

Kept for tests; the server itself lives in ``parley.server``."""

from __future__ import annotations

from parley.server import serve_app

__all__ = ["serve_app"]
