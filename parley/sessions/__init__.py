"""Sessions: durable records (``Store``) and run-time coordination (``Coordinator``).

``make_store(url)`` gives a ``SqlStore`` (SQLite or PostgreSQL);
``make_coordinator(redis_url)`` gives a ``RedisCoordinator``, or a
``LocalCoordinator`` when no Redis URL is configured. Both must be started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from parley.clock import Clock
from parley.sessions.coordinator import Coordinator, Subscription
from parley.sessions.local import LocalCoordinator
from parley.sessions.records import (
    Approval,
    ApprovalState,
    Message,
    Role,
    Session,
    SessionStatus,
    TransferRecord,
)
from parley.sessions.redis_coordinator import RedisCoordinator
from parley.sessions.sql import SqlStore
from parley.sessions.store import Store


def make_store(url: str, clock: Clock | None = None) -> SqlStore:
    return SqlStore(url, clock)


def make_coordinator(redis_url: str | None, clock: Clock | None = None) -> Coordinator:
    """Redis when a URL is given (Redis keeps its own time), else in-process."""
    if redis_url:
        return RedisCoordinator(redis_url)
    return LocalCoordinator(clock)


if TYPE_CHECKING:  # the implementations satisfy the protocols
    _store: type[Store] = SqlStore
    _local: type[Coordinator] = LocalCoordinator
    _redis: type[Coordinator] = RedisCoordinator

__all__ = [
    "Approval",
    "ApprovalState",
    "Coordinator",
    "LocalCoordinator",
    "Message",
    "RedisCoordinator",
    "Role",
    "Session",
    "SessionStatus",
    "SqlStore",
    "Store",
    "Subscription",
    "TransferRecord",
    "make_coordinator",
    "make_store",
]
