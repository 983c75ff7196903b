"""The ``Store`` protocol: durable sessions, messages, approvals and transfers.

Implementations: ``SqlStore`` (SQLAlchemy async; SQLite by default, PostgreSQL by URL).
Every method is a single short transaction. ``claim_approval`` is the one place
where atomicity matters across workers: it is a conditional UPDATE that only a
``pending`` row can pass, so the first decision wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from parley.sessions.records import Approval, ApprovalState, Message, Role, Session, TransferRecord


class Store(Protocol):
    async def start(self) -> None:
        """Create or migrate the schema (idempotent)."""

    async def close(self) -> None: ...

    # sessions
    async def create_session(
        self,
        *,
        agent: str,
        token_hash: str,
        resume_token: str,
        template_vars: dict[str, Any],
        metadata: dict[str, Any],
        expires_at: datetime | None,
        channel: str = "chat",
    ) -> Session: ...

    async def get_session(self, session_id: str) -> Session | None: ...

    async def get_session_by_resume_token(self, resume_token: str) -> Session | None: ...

    async def update_session(self, session_id: str, **fields: Any) -> Session | None:
        """Set any of: status, end_reason, ended_at, current_channel, agent_state,
        expires_at, resume_token, metadata."""

    async def end_session(self, session_id: str, reason: str) -> bool:
        """Mark ended (only once); True if this call ended it."""

    async def add_stats(self, session_id: str, counts: Mapping[str, int]) -> None:
        """Add counts to the session's ``stats`` (``sessions/stats.py``)."""

    async def list_expiring(self, before: datetime, limit: int = 500) -> list[Session]:
        """Active sessions whose ``expires_at`` is at or before ``before``, soonest first."""

    # messages
    async def add_message(
        self,
        session_id: str,
        role: Role,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        channel: str = "chat",
        interrupted: bool = False,
    ) -> Message: ...

    async def update_message(
        self,
        message_id: str,
        *,
        text: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        interrupted: bool | None = None,
    ) -> None: ...

    async def list_messages(self, session_id: str) -> list[Message]: ...

    async def count_messages(self, session_id: str, roles: tuple[Role, ...] = ()) -> int: ...

    # approvals
    async def create_approval(self, approval: Approval) -> None: ...

    async def get_approval(self, session_id: str, tool_call_id: str) -> Approval | None: ...

    async def list_approvals(
        self, session_id: str, status: ApprovalState | None = None
    ) -> list[Approval]: ...

    async def claim_approval(
        self,
        session_id: str,
        tool_call_id: str,
        status: ApprovalState,
        decided_by: str,
        reason: str | None = None,
    ) -> tuple[bool, Approval | None]:
        """Atomically move a pending approval to ``status``.

        Returns ``(True, record)`` when this call decided it, ``(False, record)``
        with the winning record when it was already decided, ``(False, None)``
        when no such approval exists."""

    # transfers (filled by the transfer issue)
    async def save_transfer(self, transfer: TransferRecord) -> None: ...

    async def get_transfer(self, transfer_id: str) -> TransferRecord | None: ...
