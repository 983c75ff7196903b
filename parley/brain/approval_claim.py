"""Claiming a pending approval: the first decision wins, atomically in the store; a later
one hears the winning status. Shared by the chat brain and the speech-to-speech turns."""

from __future__ import annotations

from typing import Literal

from parley.brain import errors
from parley.events import ApprovalResolved, Event, TurnEnd
from parley.sessions.store import Store


async def claim_approval(
    store: Store,
    session_id: str,
    tool_call_id: str,
    status: Literal["approved", "denied"],
    decided_by: str,
    reason: str | None,
) -> list[Event] | None:
    """Claim a pending approval (atomic: the first decision wins). None: this decision
    won and the caller settles it; otherwise the events that tell a loser the winning
    status. An unknown approval raises ``approval_not_found``."""
    won, record = await store.claim_approval(session_id, tool_call_id, status, decided_by, reason)
    if record is None:
        raise errors.approval_not_found()
    if won:
        return None
    final: Literal["approved", "denied"] = "approved" if record.status == "approved" else "denied"
    return [
        ApprovalResolved(tool_call_id, final, record.decided_by),
        TurnEnd("completed", "active"),
    ]
