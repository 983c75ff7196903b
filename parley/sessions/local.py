"""``LocalCoordinator``: the ``Coordinator`` protocol inside one process.

Locks and key-value entries expire on ``clock.monotonic()``, checked lazily when
read, so a test moves time with ``FakeClock.advance`` instead of sleeping.
Published messages go through a JSON round trip, so they obey the same rules
(and come out as the same fresh dicts) as with ``RedisCoordinator``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from parley.clock import Clock, SystemClock


@dataclass(slots=True)
class _Entry:
    value: str
    expires_at: float | None  # monotonic seconds; None = never

    def alive(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


def check_ttl(ttl_s: float | None, *, required: bool) -> None:
    if ttl_s is None:
        if required:
            raise ValueError("a lock needs a TTL")
        return
    if not ttl_s > 0:
        raise ValueError(f"TTL must be a positive number of seconds, got {ttl_s!r}")


class LocalSubscription:
    """Messages published to one channel after ``subscribe()`` returned."""

    _CLOSED: Any = object()

    def __init__(self, on_close: Callable[[LocalSubscription], None]) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._on_close = on_close
        self._closed = False

    def deliver(self, message: dict[str, Any]) -> None:
        if not self._closed:
            self._queue.put_nowait(message)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            item = await self._queue.get()
            if item is self._CLOSED:
                self._queue.put_nowait(item)  # later iterators end too
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        self._queue.put_nowait(self._CLOSED)


class LocalCoordinator:
    """Turn locks, a TTL key-value and pub/sub for a single worker."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._locks: dict[str, _Entry] = {}
        self._values: dict[str, _Entry] = {}
        self._channels: dict[str, set[LocalSubscription]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        subscriptions = [s for subs in self._channels.values() for s in subs]
        for subscription in subscriptions:
            await subscription.close()
        self._channels.clear()

    # locks ----------------------------------------------------------------------

    def _live(self, table: dict[str, _Entry], key: str) -> _Entry | None:
        entry = table.get(key)
        if entry is not None and not entry.alive(self._clock.monotonic()):
            del table[key]
            return None
        return entry

    async def acquire_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        check_ttl(ttl_s, required=True)
        if self._live(self._locks, key) is not None:
            return False
        self._locks[key] = _Entry(owner, self._clock.monotonic() + ttl_s)
        return True

    async def refresh_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        check_ttl(ttl_s, required=True)
        entry = self._live(self._locks, key)
        if entry is None or entry.value != owner:
            return False
        entry.expires_at = self._clock.monotonic() + ttl_s
        return True

    async def take_lock(self, key: str, owner: str, ttl_s: float) -> str | None:
        check_ttl(ttl_s, required=True)
        entry = self._live(self._locks, key)
        self._locks[key] = _Entry(owner, self._clock.monotonic() + ttl_s)
        return entry.value if entry else None

    async def release_lock(self, key: str, owner: str) -> bool:
        entry = self._live(self._locks, key)
        if entry is None or entry.value != owner:
            return False
        del self._locks[key]
        return True

    async def lock_owner(self, key: str) -> str | None:
        entry = self._live(self._locks, key)
        return entry.value if entry else None

    # key-value ------------------------------------------------------------------

    def _entry(self, value: str, ttl_s: float | None) -> _Entry:
        check_ttl(ttl_s, required=False)
        expires = None if ttl_s is None else self._clock.monotonic() + ttl_s
        return _Entry(value, expires)

    async def get(self, key: str) -> str | None:
        entry = self._live(self._values, key)
        return entry.value if entry else None

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None:
        self._values[key] = self._entry(value, ttl_s)

    async def set_if_absent(self, key: str, value: str, ttl_s: float | None = None) -> bool:
        entry = self._entry(value, ttl_s)
        if self._live(self._values, key) is not None:
            return False
        self._values[key] = entry
        return True

    async def compare_and_set(
        self, key: str, expected: str | None, value: str, ttl_s: float | None = None
    ) -> bool:
        entry = self._entry(value, ttl_s)
        current = self._live(self._values, key)
        if (current.value if current is not None else None) != expected:
            return False
        self._values[key] = entry
        return True

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    # pub/sub --------------------------------------------------------------------

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        encoded = json.dumps(message)
        for subscription in list(self._channels.get(channel, ())):
            subscription.deliver(json.loads(encoded))

    async def subscribe(self, channel: str) -> LocalSubscription:
        def forget(subscription: LocalSubscription) -> None:
            subs = self._channels.get(channel)
            if subs is not None:
                subs.discard(subscription)
                if not subs:
                    del self._channels[channel]

        subscription = LocalSubscription(forget)
        self._channels.setdefault(channel, set()).add(subscription)
        return subscription
