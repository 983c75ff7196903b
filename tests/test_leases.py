"""Leases (turn lock, channel attachment) on a fake clock: renewal, expiry, loss."""

from __future__ import annotations

import asyncio

import pytest

from parley.sessions import Coordinator, LocalCoordinator
from parley.sessions.lease import Attachment, Lease, TurnLock, attached_channel
from parley.testing import FakeClock

TTL = 3.0


class Stop(Exception):
    """Ends a renewal loop after a set number of sleeps."""


class Ticks:
    """An injected sleep that moves the fake clock instead of waiting, ``limit`` times."""

    def __init__(self, clock: FakeClock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        if len(self.slept) == self.limit:
            raise Stop
        self.slept.append(seconds)
        self.clock.advance(seconds)


def local(clock: FakeClock) -> LocalCoordinator:
    return LocalCoordinator(clock)


async def test_a_renewed_lease_outlives_its_ttl_many_times() -> None:
    clock = FakeClock()
    coordinator = local(clock)
    ticks = Ticks(clock, limit=30)
    lock = TurnLock(coordinator, "s1", TTL, sleep=ticks)
    assert await lock.acquire()
    with pytest.raises(Stop):
        await lock.renew_forever()
    assert ticks.slept == [TTL / 3] * 30  # 30 s of fake time, ten TTLs
    assert not lock.lost.is_set()
    assert await coordinator.lock_owner("turn:s1") == lock.owner
    other = TurnLock(coordinator, "s1", TTL)
    assert not await other.acquire()


async def test_a_dead_holder_blocks_for_at_most_one_ttl() -> None:
    clock = FakeClock()
    coordinator = local(clock)
    dead = TurnLock(coordinator, "s1", TTL)
    assert await dead.acquire()  # and never renews: its worker was killed
    survivor = TurnLock(coordinator, "s1", TTL)
    clock.advance(TTL - 0.01)
    assert not await survivor.acquire()
    clock.advance(0.01)
    assert await survivor.acquire()


async def test_a_lease_taken_by_another_is_lost_at_the_next_renewal() -> None:
    clock = FakeClock()
    coordinator = local(clock)
    first = TurnLock(coordinator, "s1", TTL, sleep=Ticks(clock, limit=5))
    assert await first.acquire()
    calls: list[str] = []
    first._on_lost = lambda: calls.append("lost")
    # the holder stalls past its TTL; another worker takes the free lock meanwhile
    clock.advance(TTL)
    second = TurnLock(coordinator, "s1", TTL)
    assert await second.acquire()
    await first.renew_forever()  # returns at once: the first renewal fails
    assert first.lost.is_set() and calls == ["lost"]
    await first.release()  # must not release the new holder's lock
    assert await coordinator.lock_owner("turn:s1") == second.owner


async def test_keep_alive_runs_on_lost_once_and_release_frees_the_key() -> None:
    clock = FakeClock()
    coordinator = local(clock)
    lock = TurnLock(coordinator, "s1", TTL, sleep=Ticks(clock, limit=100))
    assert await lock.acquire()
    assert await coordinator.take_lock("turn:s1", "thief", TTL) == lock.owner
    lost: list[bool] = []
    lock.keep_alive(lambda: lost.append(True))
    async with asyncio.timeout(5):
        await lock.lost.wait()
    assert lost == [True]
    await lock.release()
    assert await coordinator.lock_owner("turn:s1") == "thief"
    await coordinator.release_lock("turn:s1", "thief")

    again = TurnLock(coordinator, "s1", TTL, sleep=Ticks(clock, limit=0))
    assert await again.acquire()
    await again.release()
    assert await coordinator.lock_owner("turn:s1") is None


async def test_the_newest_attachment_takes_over_and_names_the_channel() -> None:
    clock = FakeClock()
    coordinator = local(clock)
    assert await attached_channel(coordinator, "s1") is None
    old = Attachment(coordinator, "s1", "voice", TTL)
    assert await old.take_over() is None
    assert old.owner.startswith("voice:")
    assert await attached_channel(coordinator, "s1") == "voice"
    new = Attachment(coordinator, "s1", "voice", TTL)
    assert await new.take_over() == old.owner
    await old.release()  # the replaced connection's release leaves the new one alone
    assert await attached_channel(coordinator, "s1") == "voice"
    clock.advance(TTL)  # the newest holder died without releasing: the lease ends by itself
    assert await attached_channel(coordinator, "s1") is None


async def test_take_lock_swaps_the_owner_atomically(coordinator: Coordinator) -> None:
    assert await coordinator.take_lock("attach:s1", "a", 30) is None
    assert await coordinator.take_lock("attach:s1", "b", 30) == "a"
    assert await coordinator.refresh_lock("attach:s1", "a", 30) is False
    assert await coordinator.release_lock("attach:s1", "a") is False
    assert await coordinator.lock_owner("attach:s1") == "b"
    assert await coordinator.refresh_lock("attach:s1", "b", 30) is True


def test_a_lease_needs_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="positive TTL"):
        Lease(LocalCoordinator(), "k", 0)


async def test_a_takeover_is_logged_as_news_but_an_unreachable_coordinator_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    coordinator = local(clock)
    taken = TurnLock(coordinator, "s1", TTL, sleep=Ticks(clock, limit=5))
    assert await taken.acquire()
    await coordinator.take_lock("turn:s1", "newer worker", TTL)  # a resume elsewhere
    with caplog.at_level("INFO", logger="parley.sessions.lease"):
        await taken.renew_forever()
    assert taken.lost.is_set()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "lease turn:s1 was taken over")
    ]

    class Unreachable(LocalCoordinator):
        async def refresh_lock(self, key: str, owner: str, ttl_s: float) -> bool:
            raise ConnectionError("no route to Redis")

    caplog.clear()
    stranded = TurnLock(Unreachable(clock), "s2", TTL, sleep=Ticks(clock, limit=5))
    assert await stranded.acquire()
    with caplog.at_level("INFO", logger="parley.sessions.lease"):
        await stranded.renew_forever()  # lost after a TTL of failed renewals, not before
    assert stranded.lost.is_set()
    levels = [r.levelname for r in caplog.records]
    assert levels == ["WARNING"] * 4
    assert caplog.records[-1].getMessage().endswith("the coordinator stayed unreachable")
