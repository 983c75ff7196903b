"""Base URL → WebSocket URL: ``https://`` means TLS (``wss``), ``http://`` plain (``ws``)."""

from __future__ import annotations

from parley.s2s.base import S2SConfigError


def websocket_base(base_url: str) -> str:
    """``https://h/p/`` → ``wss://h/p``; ``http`` → ``ws``; ``ws``/``wss`` pass through."""
    url = base_url.strip().rstrip("/")
    for scheme, ws in (("https://", "wss://"), ("http://", "ws://")):
        if url.startswith(scheme):
            return ws + url[len(scheme) :]
    if url.startswith(("wss://", "ws://")):
        return url
    raise S2SConfigError(f"base URL {base_url!r} must start with https:// or http://")
