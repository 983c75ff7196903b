"""The one virtual clock (``parley.testing.FakeClock``) and ``SystemClock.sleep``."""

from __future__ import annotations

import asyncio

import pytest

from parley.clock import Clock, SystemClock
from parley.testing import FakeClock


async def test_played_sleepers_wake_in_deadline_order_at_their_own_time() -> None:
    clock = FakeClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, secs: float) -> None:
        await clock.sleep(secs)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in [("b", 0.3), ("a", 0.1), ("c", 0.3)]]
    await clock.run_for(0.2)
    assert woke == [("a", 0.1)] and clock.monotonic() == pytest.approx(0.2)
    await clock.run_for(1.0)
    assert woke == [("a", 0.1), ("b", 0.3), ("c", 0.3)]
    assert clock.monotonic() == pytest.approx(1.2)
    assert clock.sleeps == [0.3, 0.1, 0.3]
    await asyncio.gather(*tasks)


async def test_run_until_stops_when_the_condition_holds_and_fails_past_its_limit() -> None:
    clock = FakeClock(start=0.0)
    done = asyncio.Event()

    async def later() -> None:
        await clock.sleep(2.0)
        done.set()

    task = asyncio.create_task(later())
    assert await clock.run_until(done.is_set) == pytest.approx(2.0)
    with pytest.raises(AssertionError, match="not met within 1"):
        await clock.run_until(lambda: False, limit_s=1.0)
    await task


async def test_a_sync_advance_releases_the_sleepers_that_are_due() -> None:
    clock = FakeClock(start=0.0)
    task = asyncio.create_task(clock.sleep(1.0))
    await clock.settle()
    clock.advance(0.5)
    await clock.settle()
    assert not task.done()
    clock.advance(0.5)
    await clock.settle()
    assert task.done()


async def test_autojump_moves_the_clock_by_each_sleep() -> None:
    clock = FakeClock(start=5.0, autojump=True)
    await clock.sleep(0.25)
    await clock.sleep(0)
    assert clock.monotonic() == 5.25 and clock.sleeps == [0.25, 0]


async def test_both_clocks_are_clocks() -> None:
    clocks: list[Clock] = [SystemClock(), FakeClock(autojump=True)]
    for clock in clocks:
        before = clock.monotonic()
        await clock.sleep(0)
        assert clock.monotonic() >= before and clock.now().tzinfo is not None
