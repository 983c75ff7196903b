"""An injected ``sleep`` the test releases one call at a time (moving a fake clock)."""

from __future__ import annotations

import asyncio

from parley.testing import FakeClock

BOUND_S = 5.0  # a guard against hanging; nothing waits for it on success


class ManualSleep:
    """An injected sleep that returns only when the test releases it; releasing one
    moves the fake clock by its duration."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, asyncio.Future[None]]] = []
        self.changed = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((seconds, future))
        self.changed.set()
        await future

    async def next(self) -> float:
        """Wait (bounded) until something sleeps; its duration."""
        async with asyncio.timeout(BOUND_S):
            while not self.pending:
                self.changed.clear()
                await self.changed.wait()
        return self.pending[0][0]

    async def release(self) -> None:
        seconds = await self.next()
        _, future = self.pending.pop(0)
        self.clock.advance(seconds)
        future.set_result(None)
