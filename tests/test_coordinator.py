"""Coordinators: in-process (with a fake clock) and real Redis (checking its TTLs)."""

from __future__ import annotations

import asyncio
import uuid
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from parley.sessions import (
    Coordinator,
    LocalCoordinator,
    RedisCoordinator,
    Subscription,
    make_coordinator,
)
from parley.testing import FakeClock
from tests.plugins.stores import redis_prefix, redis_url

DEADLINE_S = 5.0  # only a guard against hanging; nothing waits for it on success


async def take(subscription: Subscription, n: int) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(DEADLINE_S):
        async for message in subscription:
            received.append(message)
            if len(received) == n:
                break
    return received


# shared behaviour, both backends ------------------------------------------------


async def test_lock_acquire_refuse_release(coordinator: Coordinator) -> None:
    assert await coordinator.lock_owner("turn:s1") is None
    assert await coordinator.acquire_lock("turn:s1", "worker-a", 30) is True
    assert await coordinator.acquire_lock("turn:s1", "worker-b", 30) is False
    assert await coordinator.acquire_lock("turn:s1", "worker-a", 30) is False
    assert await coordinator.lock_owner("turn:s1") == "worker-a"
    assert await coordinator.acquire_lock("turn:s2", "worker-b", 30) is True

    assert await coordinator.release_lock("turn:s1", "worker-b") is False
    assert await coordinator.lock_owner("turn:s1") == "worker-a"
    assert await coordinator.release_lock("turn:s1", "worker-a") is True
    assert await coordinator.release_lock("turn:s1", "worker-a") is False
    assert await coordinator.lock_owner("turn:s1") is None
    assert await coordinator.acquire_lock("turn:s1", "worker-b", 30) is True


async def test_refresh_only_by_owner(coordinator: Coordinator) -> None:
    assert await coordinator.refresh_lock("turn:s1", "worker-a", 30) is False
    await coordinator.acquire_lock("turn:s1", "worker-a", 30)
    assert await coordinator.refresh_lock("turn:s1", "worker-a", 60) is True
    assert await coordinator.refresh_lock("turn:s1", "worker-b", 60) is False
    assert await coordinator.lock_owner("turn:s1") == "worker-a"


async def test_locks_and_values_are_separate(coordinator: Coordinator) -> None:
    await coordinator.set("k", "value")
    assert await coordinator.acquire_lock("k", "owner", 30) is True
    assert await coordinator.get("k") == "value"
    assert await coordinator.lock_owner("k") == "owner"


async def test_key_value(coordinator: Coordinator) -> None:
    assert await coordinator.get("transfer:t1") is None
    await coordinator.set("transfer:t1", '{"state": "dialing"}')
    assert await coordinator.get("transfer:t1") == '{"state": "dialing"}'
    await coordinator.set("transfer:t1", "bridged", ttl_s=60)
    assert await coordinator.get("transfer:t1") == "bridged"
    assert await coordinator.set_if_absent("transfer:t1", "other") is False
    assert await coordinator.get("transfer:t1") == "bridged"
    assert await coordinator.set_if_absent("transfer:t2", "new", ttl_s=60) is True
    assert await coordinator.get("transfer:t2") == "new"
    await coordinator.delete("transfer:t1")
    await coordinator.delete("never-set")
    assert await coordinator.get("transfer:t1") is None


async def test_bad_ttls_are_refused(coordinator: Coordinator) -> None:
    with pytest.raises(ValueError, match="TTL must be a positive"):
        await coordinator.acquire_lock("k", "o", 0)
    with pytest.raises(ValueError, match="TTL must be a positive"):
        await coordinator.refresh_lock("k", "o", -1)
    with pytest.raises(ValueError, match="TTL must be a positive"):
        await coordinator.set("k", "v", ttl_s=0)
    assert await coordinator.lock_owner("k") is None and await coordinator.get("k") is None


async def test_pubsub_delivers_to_every_subscriber_after_subscribe(
    coordinator: Coordinator,
) -> None:
    await coordinator.publish("session:s1", {"n": 0})
    first = await coordinator.subscribe("session:s1")
    await coordinator.publish("session:s1", {"n": 1, "nested": {"list": [1, "x"]}})
    second = await coordinator.subscribe("session:s1")
    await coordinator.publish("session:other", {"n": -1})
    await coordinator.publish("session:s1", {"n": 2})

    assert await take(first, 2) == [{"n": 1, "nested": {"list": [1, "x"]}}, {"n": 2}]
    assert await take(second, 1) == [{"n": 2}]
    await first.close()
    await second.close()


async def test_subscription_close_ends_iteration(coordinator: Coordinator) -> None:
    subscription = await coordinator.subscribe("events")
    received: list[dict[str, Any]] = []
    got_one = asyncio.Event()

    async def consume() -> None:
        async for message in subscription:
            received.append(message)
            got_one.set()

    consumer = asyncio.create_task(consume())
    await coordinator.publish("events", {"type": "hello"})
    async with asyncio.timeout(DEADLINE_S):
        await got_one.wait()
        await subscription.close()
        await consumer
    assert received == [{"type": "hello"}]
    await subscription.close()  # twice is fine
    assert [m async for m in subscription] == []


async def test_coordinator_close_ends_subscriptions(coordinator: Coordinator) -> None:
    subscription = await coordinator.subscribe("events")
    await coordinator.close()
    async with asyncio.timeout(DEADLINE_S):
        assert [m async for m in subscription] == []


# in-process: time is a FakeClock -----------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def local(clock: FakeClock) -> AsyncIterator[LocalCoordinator]:
    coordinator = LocalCoordinator(clock)
    await coordinator.start()
    yield coordinator
    await coordinator.close()


async def test_local_lock_expires_on_the_clock(local: LocalCoordinator, clock: FakeClock) -> None:
    assert await local.acquire_lock("turn", "crashed", 10)
    clock.advance(9.9)
    assert await local.acquire_lock("turn", "next", 10) is False
    clock.advance(0.1)
    assert await local.lock_owner("turn") is None
    assert await local.refresh_lock("turn", "crashed", 10) is False
    assert await local.acquire_lock("turn", "next", 10) is True
    assert await local.release_lock("turn", "crashed") is False
    assert await local.lock_owner("turn") == "next"


async def test_local_refresh_extends_from_now(local: LocalCoordinator, clock: FakeClock) -> None:
    await local.acquire_lock("turn", "a", 10)
    clock.advance(8)
    assert await local.refresh_lock("turn", "a", 10)
    clock.advance(8)
    assert await local.lock_owner("turn") == "a"
    clock.advance(2)
    assert await local.lock_owner("turn") is None


async def test_local_values_expire(local: LocalCoordinator, clock: FakeClock) -> None:
    await local.set("short", "1", ttl_s=5)
    await local.set("forever", "2")
    assert await local.set_if_absent("claim", "first", ttl_s=5)
    clock.advance(4.99)
    assert (await local.get("short"), await local.get("claim")) == ("1", "first")
    clock.advance(0.01)
    assert await local.get("short") is None
    assert await local.set_if_absent("claim", "second") is True
    assert await local.get("claim") == "second"
    clock.advance(1e6)
    assert await local.get("forever") == "2" and await local.get("claim") == "second"


async def test_local_publish_refuses_non_json(local: LocalCoordinator) -> None:
    with pytest.raises(TypeError):
        await local.publish("c", {"when": object()})


async def test_make_coordinator_picks_the_backend() -> None:
    assert isinstance(make_coordinator(None), LocalCoordinator)
    assert isinstance(make_coordinator(redis_url()), RedisCoordinator)


# Redis: check the TTLs Redis holds rather than waiting for them ------------------


@pytest.fixture
async def redis_pair() -> AsyncIterator[tuple[RedisCoordinator, RedisCoordinator, Any]]:
    """Two workers sharing one (test-unique) prefix, plus a raw client."""
    async with redis_prefix() as prefix:
        a = RedisCoordinator(redis_url(), prefix=prefix)
        b = RedisCoordinator(redis_url(), prefix=prefix)
        raw = aioredis.Redis.from_url(redis_url(), decode_responses=True)
        await a.start()
        await b.start()
        try:
            yield a, b, raw
        finally:
            await a.close()
            await b.close()
            await raw.aclose()


async def test_redis_lock_ttl_is_set_and_refreshed(redis_pair: Any) -> None:
    a, b, raw = redis_pair
    key = f"{a.prefix}lock:turn:s1"
    assert await a.acquire_lock("turn:s1", "worker-a", 30)
    assert await raw.get(key) == "worker-a"
    assert 29_000 < await raw.pttl(key) <= 30_000
    assert await b.refresh_lock("turn:s1", "worker-b", 300) is False
    assert await raw.pttl(key) <= 30_000
    assert await a.refresh_lock("turn:s1", "worker-a", 300)
    assert 299_000 < await raw.pttl(key) <= 300_000
    assert await b.acquire_lock("turn:s1", "worker-b", 30) is False
    assert await b.lock_owner("turn:s1") == "worker-a"


async def test_redis_expired_lock_can_be_taken_over(redis_pair: Any) -> None:
    a, b, raw = redis_pair
    await a.acquire_lock("turn:s1", "worker-a", 30)
    await raw.pexpireat(f"{a.prefix}lock:turn:s1", 1)  # its deadline has passed
    assert await b.lock_owner("turn:s1") is None
    assert await b.acquire_lock("turn:s1", "worker-b", 30)
    assert await a.release_lock("turn:s1", "worker-a") is False
    assert await a.refresh_lock("turn:s1", "worker-a", 30) is False
    assert await b.lock_owner("turn:s1") == "worker-b"


async def test_redis_value_ttls(redis_pair: Any) -> None:
    a, b, raw = redis_pair
    await a.set("t1", "x", ttl_s=2.5)
    await a.set("t2", "y")
    assert await b.set_if_absent("t3", "z", ttl_s=0.0004) is True
    assert 2_400 < await raw.pttl(f"{a.prefix}kv:t1") <= 2_500
    assert await raw.pttl(f"{a.prefix}kv:t2") == -1
    assert await raw.pttl(f"{a.prefix}kv:t3") in (1, 0, -2)  # rounded up to 1 ms
    await a.set("t1", "x2")
    assert await raw.pttl(f"{a.prefix}kv:t1") == -1
    assert await b.get("t1") == "x2"


async def test_redis_pubsub_crosses_workers(redis_pair: Any) -> None:
    a, b, _ = redis_pair
    on_a = await a.subscribe("session:s1")
    on_b = await b.subscribe("session:s1")
    await a.publish("session:s1", {"from": "a"})
    await b.publish("session:s1", {"from": "b"})
    assert await take(on_a, 2) == [{"from": "a"}, {"from": "b"}]
    assert await take(on_b, 2) == [{"from": "a"}, {"from": "b"}]


async def test_redis_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="redis://"):
        RedisCoordinator("http://127.0.0.1:6379")
    with pytest.raises(RuntimeError, match="not started"):
        await RedisCoordinator(redis_url()).get("k")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"cannot reach Redis at redis://127.0.0.1:{port}"):
        await RedisCoordinator(f"redis://127.0.0.1:{port}").start()


async def test_compare_and_set_acts_only_on_the_expected_value(coordinator: Coordinator) -> None:
    key = f"cas:{uuid.uuid4().hex}"
    assert await coordinator.compare_and_set(key, "x", "a") is False  # absent, not "x"
    assert await coordinator.compare_and_set(key, None, "a", ttl_s=30) is True
    assert await coordinator.compare_and_set(key, None, "b") is False  # present now
    assert await coordinator.compare_and_set(key, "b", "c") is False
    assert await coordinator.compare_and_set(key, "a", "c", ttl_s=30) is True
    assert await coordinator.get(key) == "c"
    await coordinator.delete(key)


async def pubsub_connections(raw: Any, channels: int) -> list[dict[str, Any]]:
    """The pub/sub connections to Redis listening to exactly ``channels`` channels (the
    count tells ours apart from other tests' on the same server)."""
    return [c for c in await raw.client_list(_type="pubsub") if int(c["sub"]) == channels]


async def test_redis_subscriptions_of_a_worker_share_one_connection(redis_pair: Any) -> None:
    """One subscription per live voice connection: 150 of them on one worker are one
    Redis connection (plus the worker's private channel), not 150; commands still go
    through, and the last subscription of a channel unsubscribes it."""
    a, _, raw = redis_pair
    subscriptions = [await a.subscribe(f"session:s{i}") for i in range(150)]
    try:
        assert len(await pubsub_connections(raw, 151)) == 1
        assert await a.acquire_lock("turn:x", "me", 5.0)
        await a.publish("session:s149", {"type": "probe"})
        assert await anext(aiter(subscriptions[-1])) == {"type": "probe"}
    finally:
        for subscription in subscriptions[:100]:
            await subscription.close()
    assert await raw.pubsub_numsub(f"{a.prefix}ch:session:s0") == [(f"{a.prefix}ch:session:s0", 0)]
    assert len(await pubsub_connections(raw, 51)) == 1
    for subscription in subscriptions[100:]:
        await subscription.close()


async def test_redis_a_channel_stays_subscribed_while_one_subscription_is_left(
    redis_pair: Any,
) -> None:
    a, b, _ = redis_pair
    first = await a.subscribe("session:s1")
    second = await a.subscribe("session:s1")
    await first.close()
    await b.publish("session:s1", {"n": 1})
    assert await take(second, 1) == [{"n": 1}]
    await second.close()
    again = await a.subscribe("session:s1")  # unsubscribed, then subscribed anew
    await b.publish("session:s1", {"n": 2})
    assert await take(again, 1) == [{"n": 2}]
    await again.close()


async def test_redis_lost_pubsub_connection_ends_subscriptions_and_the_next_reconnects(
    redis_pair: Any,
) -> None:
    """Killing the worker's pub/sub connection ends its subscriptions' iteration (the
    channel layer treats that as a lost subscription); a new subscribe works again."""
    a, b, raw = redis_pair
    subscriptions = [await a.subscribe(f"session:k{i}") for i in range(7)]
    (ours,) = await pubsub_connections(raw, 8)
    await raw.client_kill_filter(_id=ours["id"])
    async with asyncio.timeout(DEADLINE_S):
        for subscription in subscriptions:
            assert [m async for m in subscription] == []
    fresh = await a.subscribe("session:k0")
    await b.publish("session:k0", {"n": 1})
    assert await take(fresh, 1) == [{"n": 1}]
    await fresh.close()


async def test_the_redis_prefix_setting_keeps_deployments_apart(tmp_path: Any) -> None:
    """PARLEY_REDIS_PREFIX: two deployments on one Redis never see each other's keys."""
    from parley.app import make_coordinator as app_coordinator
    from parley.settings import Settings

    async with redis_prefix() as one, redis_prefix() as two:
        first = app_coordinator(
            Settings(data_dir=tmp_path, redis_url=redis_url(), redis_prefix=one), FakeClock()
        )
        second = app_coordinator(
            Settings(data_dir=tmp_path, redis_url=redis_url(), redis_prefix=two), FakeClock()
        )
        await first.start()
        await second.start()
        try:
            await first.set("transfers", "mine")
            assert await second.get("transfers") is None
            assert await first.get("transfers") == "mine"
        finally:
            await first.close()
            await second.close()
