"""The ``Coordinator`` protocol: what workers must agree on at run time.

Turn locks (owner token + TTL: a crashed holder's lock expires, only the owner can
release or refresh it), a small key-value with TTL, and publish/subscribe for
cross-worker events. ``LocalCoordinator`` keeps all of it in one process;
``RedisCoordinator`` shares it between workers. Both take a clock for TTLs where
they can (Redis keeps its own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[dict[str, Any]]: ...

    async def close(self) -> None: ...


class Coordinator(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def acquire_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take the lock if free or expired; never waits."""

    async def refresh_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        """Extend the TTL; False if ``owner`` no longer holds it."""

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release only if ``owner`` holds it."""

    async def take_lock(self, key: str, owner: str, ttl_s: float) -> str | None:
        """Take the lock whoever holds it (the newest holder wins); returns the
        previous live owner, or None."""

    async def lock_owner(self, key: str) -> str | None: ...

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_s: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: str, ttl_s: float | None = None) -> bool: ...

    async def compare_and_set(
        self, key: str, expected: str | None, value: str, ttl_s: float | None = None
    ) -> bool:
        """Set ``value`` only if the key holds ``expected`` (None: absent or expired)."""

    async def delete(self, key: str) -> None: ...

    async def publish(self, channel: str, message: dict[str, Any]) -> None: ...

    async def subscribe(self, channel: str) -> Subscription:
        """Start receiving messages published after this call returns."""
