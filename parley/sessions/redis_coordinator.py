"""``RedisCoordinator``: the ``Coordinator`` protocol shared between workers via Redis.

Keys live under one prefix (``parley:`` by default): ``<prefix>lock:<key>``,
``<prefix>kv:<key>`` and pub/sub channels ``<prefix>ch:<channel>``.

- Locks are ``SET key owner NX PX ttl``; refresh and release run tiny Lua scripts
  that act only if the stored owner matches (``take_lock`` swaps the owner in one
  script and returns the previous one), so a worker whose lock expired and
  was taken over cannot release or extend the new owner's lock.
- TTLs are Redis's own (milliseconds, at least 1).
- Each subscription has its own connection and a reader task feeding a queue;
  ``subscribe()`` returns only after Redis confirmed the subscription, so any
  message published afterwards is delivered. Messages are JSON objects.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from parley.sessions.local import check_ttl

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "parley:"
SUBSCRIBE_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 10_000  # Redis's own default maxclients

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

_TAKE = """
local previous = redis.call('get', KEYS[1])
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return previous
"""

_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


_COMPARE_AND_SET = """
local current = redis.call('get', KEYS[1])
if (current == false and ARGV[1] == '') or (ARGV[1] == '1' and current == ARGV[2]) then
  if ARGV[4] == '' then
    redis.call('set', KEYS[1], ARGV[3])
  else
    redis.call('set', KEYS[1], ARGV[3], 'PX', ARGV[4])
  end
  return 1
end
return 0
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def ttl_ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


class RedisSubscription:
    """Messages from one Redis channel, read by a background task into a queue."""

    _CLOSED: Any = object()

    def __init__(
        self, pubsub: PubSub, channel: str, on_close: Callable[[RedisSubscription], None]
    ) -> None:
        self._pubsub = pubsub
        self._channel = channel
        self._on_close = on_close
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self) -> None:
        await self._pubsub.subscribe(self._channel)
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
            while True:
                reply = await self._pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_S)
                if reply and reply["type"] == "subscribe":
                    break
        self._reader = asyncio.create_task(self._read(), name=f"redis-sub:{self._channel}")

    async def _read(self) -> None:
        try:
            async for reply in self._pubsub.listen():
                if reply["type"] != "message":
                    continue
                try:
                    self._queue.put_nowait(json.loads(reply["data"]))
                except json.JSONDecodeError:
                    log.warning("dropped a non-JSON message on %s", self._channel)
        except RedisError as exc:
            log.warning("subscription to %s lost: %s", self._channel, exc)
        finally:
            self._queue.put_nowait(self._CLOSED)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await self._queue.get()
            if item is self._CLOSED:
                self._queue.put_nowait(item)
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
        # A reader cancelled before it ever ran did not get to signal the end.
        self._queue.put_nowait(self._CLOSED)
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


class RedisCoordinator:
    """Turn locks, a TTL key-value and pub/sub shared by all workers."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("Redis URL must start with redis://, rediss:// or unix://")
        self.url = url
        self.prefix = prefix
        self._client: aioredis.Redis | None = None
        self._subscriptions: set[RedisSubscription] = set()

    async def start(self) -> None:
        if self._client is not None:
            return
        # Every live subscription (one per voice/phone/realtime connection) holds its own
        # Redis connection; redis-py's default pool of 100 ran out at 100 voice sessions
        # on one worker. One multiplexed pub/sub connection per worker would be leaner.
        client = aioredis.Redis.from_url(
            self.url, decode_responses=True, max_connections=MAX_CONNECTIONS
        )
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise ConnectionError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._client = client

    async def close(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.close()
        self._subscriptions.clear()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisCoordinator is not started: await coordinator.start() first")
        return self._client

    def _lock_key(self, key: str) -> str:
        return f"{self.prefix}lock:{key}"

    def _kv_key(self, key: str) -> str:
        return f"{self.prefix}kv:{key}"

    def _channel(self, channel: str) -> str:
        return f"{self.prefix}ch:{channel}"

    # locks ----------------------------------------------------------------------

    async def acquire_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        check_ttl(ttl_s, required=True)
        done = await self._redis().set(self._lock_key(key), owner, nx=True, px=ttl_ms(ttl_s))
        return bool(done)

    async def refresh_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        check_ttl(ttl_s, required=True)
        done = await self._redis().eval(_REFRESH, 1, self._lock_key(key), owner, ttl_ms(ttl_s))
        return bool(done)

    async def take_lock(self, key: str, owner: str, ttl_s: float) -> str | None:
        check_ttl(ttl_s, required=True)
        previous = await self._redis().eval(_TAKE, 1, self._lock_key(key), owner, ttl_ms(ttl_s))
        return _text(previous) if previous else None

    async def release_lock(self, key: str, owner: str) -> bool:
        return bool(await self._redis().eval(_RELEASE, 1, self._lock_key(key), owner))

    async def lock_owner(self, key: str) -> str | None:
        return _text(await self._redis().get(self._lock_key(key)))

    # key-value ------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        return _text(await self._redis().get(self._kv_key(key)))

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        check_ttl(ttl_s, required=False)
        px = None if ttl_s is None else ttl_ms(ttl_s)
        await self._redis().set(self._kv_key(key), value, px=px)

    async def set_if_absent(self, key: str, value: str, ttl_s: float | None = None) -> bool:
        check_ttl(ttl_s, required=False)
        px = None if ttl_s is None else ttl_ms(ttl_s)
        return bool(await self._redis().set(self._kv_key(key), value, nx=True, px=px))

    async def compare_and_set(
        self, key: str, expected: str | None, value: str, ttl_s: float | None = None
    ) -> bool:
        check_ttl(ttl_s, required=False)
        px = "" if ttl_s is None else str(ttl_ms(ttl_s))
        args = ["" if expected is None else "1", expected or "", value, px]
        return bool(await self._redis().eval(_COMPARE_AND_SET, 1, self._kv_key(key), *args))

    async def delete(self, key: str) -> None:
        await self._redis().delete(self._kv_key(key))

    # pub/sub --------------------------------------------------------------------

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis().publish(self._channel(channel), json.dumps(message))

    async def subscribe(self, channel: str) -> RedisSubscription:
        subscription = RedisSubscription(
            self._redis().pubsub(), self._channel(channel), self._subscriptions.discard
        )
        try:
            await subscription.open()
        except BaseException:
            await subscription.close()
            raise
        self._subscriptions.add(subscription)
        return subscription
