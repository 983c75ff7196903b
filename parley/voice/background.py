"""``BackgroundTasks``: the tasks one voice session spawns, cancelled together at close.

A task that fails is logged with the session's id (nobody awaits it); ``close`` cancels
what still runs and waits for it, swallowing what the cancelled tasks raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("parley.voice.session")


class BackgroundTasks:
    """The running tasks of session ``session_id``."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def close(self) -> None:
        """Cancel every running task and wait until each has stopped."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("voice task of session %s failed", self.session_id, exc_info=exc)
