"""``RedisCoordinator``: the ``Coordinator`` protocol shared between workers via Redis.

Keys live under one prefix (``parley:`` by default): ``<prefix>lock:<key>``,
``<prefix>kv:<key>`` and pub/sub channels ``<prefix>ch:<channel>``.

- Locks are ``SET key owner NX PX ttl``; refresh and release run tiny Lua scripts
  that act only if the stored owner matches (``take_lock`` swaps the owner in one
  script and returns the previous one), so a worker whose lock expired and
  was taken over cannot release or extend the new owner's lock.
- TTLs are Redis's own (milliseconds, at least 1).
- Pub/sub: all of a worker's subscriptions share one connection (``RedisPubSub``);
  ``subscribe()`` returns only after Redis confirmed the subscription, so any
  message published afterwards is delivered. Messages are JSON objects.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from parley.sessions.local import check_ttl
from parley.sessions.redis_pubsub import RedisPubSub, RedisSubscription

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


class RedisCoordinator:
    """Turn locks, a TTL key-value and pub/sub shared by all workers."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("Redis URL must start with redis://, rediss:// or unix://")
        self.url = url
        self.prefix = prefix
        self._client: aioredis.Redis | None = None
        self._pubsub: RedisPubSub | None = None

    async def start(self) -> None:
        if self._client is not None:
            return
        # Commands borrow a pooled connection for a moment; the pool's cap is Redis's own
        # default maxclients, so a burst of concurrent commands is never refused here.
        client = aioredis.Redis.from_url(
            self.url, decode_responses=True, max_connections=MAX_CONNECTIONS
        )
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            raise ConnectionError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._client = client
        self._pubsub = RedisPubSub(client, self._channel("_worker"))

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            await pubsub.close()
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
        if self._pubsub is None:
            raise RuntimeError("RedisCoordinator is not started: await coordinator.start() first")
        return await self._pubsub.subscribe(self._channel(channel))
