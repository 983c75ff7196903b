"""``FakeClock``: the one virtual clock of the test kit.

It moves only when told to. ``advance(secs)`` jumps (and releases the sleepers that
are due); ``sleep(secs)`` waits until the clock has moved ``secs`` on. Two ways to
drive code that sleeps:

* **Played** (the default): ``await clock.run_for(secs)`` moves the clock from one
  sleeper's deadline to the next, letting everything that becomes runnable run in
  between (``settle``); ``run_until(condition)`` plays until a condition holds. Real
  I/O that a test wants waited for is bracketed by ``io_started``/``io_finished``
  (see ``parley.testing.voice.TrackedStore``), so a timeline plays out the same
  however fast the machine is.
* **Autojump** (``FakeClock(autojump=True)``): ``sleep`` moves the clock itself, for a
  single actor whose waits are the thing under test (the fake engines' schedules).

Every requested sleep is recorded in ``sleeps``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_SETTLE_ROUNDS = 100_000


class FakeClock:
    """A ``parley.clock.Clock`` in virtual time (see the module docstring)."""

    def __init__(
        self,
        start: float = 1000.0,
        wall: datetime | None = None,
        *,
        autojump: bool = False,
        io_timeout_s: float = 20.0,
    ) -> None:
        self._mono = start
        self._wall = wall or datetime(2026, 1, 1, tzinfo=UTC)
        self.autojump = autojump
        self.io_timeout_s = io_timeout_s
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._io = 0
        self._io_idle: asyncio.Event | None = None

    # --- reading and moving time ----------------------------------------------------

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` on; sleepers due by then are released (they run when
        the event loop next gets control)."""
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        self._release(self._mono)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has moved ``seconds`` on."""
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        if self.autojump:
            self.advance(seconds)
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._order), waiter))
        await waiter

    # --- playing a timeline ---------------------------------------------------------

    def io_started(self) -> None:
        self._io += 1
        if self._io_idle is not None:
            self._io_idle.clear()

    def io_finished(self) -> None:
        self._io -= 1
        if self._io == 0 and self._io_idle is not None:
            self._io_idle.set()

    async def settle(self) -> None:
        """Run everything runnable (and wait for tracked I/O) until all is waiting."""
        loop = asyncio.get_running_loop()
        for _ in range(_SETTLE_ROUNDS):
            await asyncio.sleep(0)
            if getattr(loop, "_ready", ()):  # other callbacks are scheduled
                continue
            if self._io:
                if self._io_idle is None:
                    self._io_idle = asyncio.Event()
                await asyncio.wait_for(self._io_idle.wait(), self.io_timeout_s)
                continue
            return
        raise RuntimeError("the event loop never settled (a busy loop without sleeping?)")

    async def run_for(self, secs: float) -> None:
        """Move the clock ``secs`` on, waking sleepers in deadline order."""
        target = self._mono + secs
        await self._play(target, None)
        if target > self._mono:
            self.advance(target - self._mono)
        await self.settle()

    async def run_until(self, condition: Callable[[], bool], limit_s: float = 120.0) -> float:
        """Play until ``condition()`` holds; returns the virtual time it took.
        Fails if it does not hold within ``limit_s`` of virtual time."""
        start = self._mono
        if not await self._play(start + limit_s, condition):
            raise AssertionError(f"condition not met within {limit_s} s of virtual time")
        return self._mono - start

    async def _play(self, target: float, condition: Callable[[], bool] | None) -> bool:
        while True:
            await self.settle()
            if condition is not None and condition():
                return True
            deadline = self._next_deadline()
            if deadline is None or deadline > target:
                return False
            if deadline > self._mono:
                self.advance(deadline - self._mono)
            else:
                self._release(deadline)

    def _release(self, until: float) -> None:
        while self._sleepers and self._sleepers[0][0] <= until:
            waiter = heapq.heappop(self._sleepers)[2]
            if not waiter.done():
                waiter.set_result(None)

    def _next_deadline(self) -> float | None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)  # a cancelled sleeper
        return self._sleepers[0][0] if self._sleepers else None
