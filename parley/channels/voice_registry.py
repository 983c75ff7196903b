"""The live voice connections of this worker, and the drain that moves them away.

On ``SIGTERM`` (``parley/server.py``) the worker stops taking new sessions, tells
every voice connection ``go_away`` with its resume token (the client reconnects with
it; behind a load balancer it lands on another worker, whose newer attachment
replaces this one), lets running turns finish, and ends what is still here at the
drain deadline with ``SERVER_SHUTDOWN``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send_text(self, text: str) -> None: ...


@dataclass(eq=False)
class LiveVoice:
    session_id: str
    resume_token: str
    sender: Sender
    told_to_go: bool = field(default=False)


class VoiceRegistry:
    def __init__(self) -> None:
        self._live: set[LiveVoice] = set()
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, session_id: str, resume_token: str, sender: Sender) -> LiveVoice:
        live = LiveVoice(session_id, resume_token, sender)
        self._live.add(live)
        self._empty.clear()
        return live

    def remove(self, live: LiveVoice) -> None:
        self._live.discard(live)
        if not self._live:
            self._empty.set()

    def __len__(self) -> int:
        return len(self._live)

    def sessions(self) -> list[str]:
        return [live.session_id for live in self._live]

    async def go_away_all(self, render: Callable[[Mapping[str, object]], str]) -> int:
        """Send ``go_away`` to every connection (each once); returns how many."""
        told = 0
        for live in list(self._live):
            if live.told_to_go:
                continue
            live.told_to_go = True
            message = {
                "type": "go_away",
                "reason": "server_shutdown",
                "resume_token": live.resume_token,
            }
            try:
                await live.sender.send_text(render(message))
                told += 1
            except Exception as exc:  # a socket that is going anyway
                log.info("go_away to session %s failed: %s", live.session_id, exc)
        return told

    async def wait_empty(self) -> None:
        await self._empty.wait()


async def drain_worker(
    registry: VoiceRegistry,
    *,
    stop_new: Callable[[], None],
    go_away: Callable[[], Awaitable[int]],
    finish_turns: Callable[[], Awaitable[None]],
    end: Callable[[str], Awaitable[object]],
    drain_s: float,
) -> None:
    """The drain of one worker (see the module docstring)."""
    stop_new()
    told = await go_away()
    log.info("drain: go_away sent to %d voice connection(s)", told)
    try:
        async with asyncio.timeout(drain_s):
            await finish_turns()
            await registry.wait_empty()
    except TimeoutError:
        log.warning("drain: %d voice connection(s) still here after %.1f s", len(registry), drain_s)
    for session_id in registry.sessions():
        await end(session_id)
