"""Leases held in the ``Coordinator``: the turn lock and the channel attachment.

A ``Lease`` is a coordinator lock with a short TTL that its holder keeps renewing
(every third of the TTL, on an injected ``sleep``) for as long as it lives. A holder
that dies — a SIGKILLed worker, a stalled event loop — stops renewing, and the lease
expires by itself within one TTL, so no session stays blocked after a crash.

When a renewal finds the lease gone or owned by someone else, the lease is *lost*:
``lost`` is set and the ``on_lost`` callback runs once. ``TurnLock`` is the lease a
turn runs under (the turn is cancelled when it is lost); ``Attachment`` is the lease
of a live channel (the newest voice connection takes it over; see ``lifecycle``).
Renewal errors (e.g. Redis unreachable) are retried; the lease counts as lost once
no renewal has succeeded for a whole TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from parley.sessions.coordinator import Coordinator

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
RENEWALS_PER_TTL = 3


class Lease:
    """One holder's claim on ``key`` for ``ttl_s`` seconds at a time."""

    def __init__(
        self,
        coordinator: Coordinator,
        key: str,
        ttl_s: float,
        *,
        sleep: Sleep = asyncio.sleep,
        owner: str | None = None,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"a lease needs a positive TTL, got {ttl_s!r}")
        self.coordinator = coordinator
        self.key = key
        self.ttl_s = ttl_s
        self.owner = owner or uuid.uuid4().hex
        self.lost = asyncio.Event()
        self._sleep = sleep
        self._renewer: asyncio.Task[None] | None = None
        self._on_lost: Callable[[], None] | None = None

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it; never waits."""
        return await self.coordinator.acquire_lock(self.key, self.owner, self.ttl_s)

    async def take_over(self) -> str | None:
        """Take the lease whoever holds it; returns the previous holder (or None)."""
        return await self.coordinator.take_lock(self.key, self.owner, self.ttl_s)

    def keep_alive(self, on_lost: Callable[[], None] | None = None) -> None:
        """Start renewing in the background; ``on_lost`` runs once if the lease is lost."""
        self._on_lost = on_lost
        if self._renewer is None:
            self._renewer = asyncio.create_task(self.renew_forever(), name=f"lease-{self.key}")

    async def renew_forever(self) -> None:
        """Renew every third of the TTL until released or lost."""
        failures = 0
        while True:
            await self._sleep(self.ttl_s / RENEWALS_PER_TTL)
            try:
                held = await self.coordinator.refresh_lock(self.key, self.owner, self.ttl_s)
            except Exception as exc:  # the coordinator is unreachable: retry until the TTL
                failures += 1
                log.warning("renewing %s failed (%d): %s", self.key, failures, exc)
                if failures >= RENEWALS_PER_TTL:
                    log.warning("lease %s was lost: the coordinator stayed unreachable", self.key)
                    self._mark_lost()
                    return
                continue
            failures = 0
            if not held:  # another holder took it (a resume elsewhere): expected, not alarming
                log.info("lease %s was taken over", self.key)
                self._mark_lost()
                return

    def _mark_lost(self) -> None:
        if self.lost.is_set():
            return
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost()

    async def reacquire(self) -> bool:
        """After a loss: take the lease again if nobody holds it, and renew it again."""
        if not await self.acquire():
            return False
        self.lost.clear()
        self._renewer = None
        self.keep_alive(self._on_lost)
        return True

    async def stop_renewing(self) -> None:
        """Stop the background renewal (the lease then runs out by itself)."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None and renewer is not asyncio.current_task():
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer

    async def release(self) -> None:
        """Stop renewing and give the lease back (only if still ours); never raises."""
        await self.stop_renewing()
        with contextlib.suppress(Exception):
            await asyncio.shield(self.coordinator.release_lock(self.key, self.owner))


def turn_lock_key(session_id: str) -> str:
    return f"turn:{session_id}"


def attachment_key(session_id: str) -> str:
    return f"attach:{session_id}"


class TurnLock(Lease):
    """The session's turn lock: one running turn at a time, across workers."""

    def __init__(
        self,
        coordinator: Coordinator,
        session_id: str,
        ttl_s: float,
        *,
        sleep: Sleep = asyncio.sleep,
        owner: str | None = None,
    ) -> None:
        super().__init__(coordinator, turn_lock_key(session_id), ttl_s, sleep=sleep, owner=owner)


class Attachment(Lease):
    """A live channel's hold on a session. The owner string is ``<channel>:<id>``."""

    def __init__(
        self,
        coordinator: Coordinator,
        session_id: str,
        channel: str,
        ttl_s: float,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        owner = f"{channel}:{uuid.uuid4().hex}"
        super().__init__(coordinator, attachment_key(session_id), ttl_s, sleep=sleep, owner=owner)
        self.session_id = session_id
        self.channel = channel


async def attached_channel(coordinator: Coordinator, session_id: str) -> str | None:
    """The channel whose live attachment holds the session, or None."""
    owner = await coordinator.lock_owner(attachment_key(session_id))
    return owner.partition(":")[0] if owner else None
