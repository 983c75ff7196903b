"""Rows <-> records for ``SqlStore``: plain functions, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from parley.sessions.records import Approval, Message, Session, TransferRecord
from parley.sessions.sql_schema import approvals, messages, sessions, transfers


def check_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} is a naive datetime; pass a timezone-aware UTC one")


def columns(table: sa.Table, row: sa.Row[Any]) -> dict[str, Any]:
    mapping = row._mapping
    return {c.name: mapping[c] for c in table.columns}


def session_values(s: Session) -> dict[str, Any]:
    return {
        "id": s.id,
        "agent": s.agent,
        "status": s.status,
        "token_hash": s.token_hash,
        "resume_token": s.resume_token,
        "current_channel": s.current_channel,
        "end_reason": s.end_reason,
        "template_vars": s.template_vars,
        "metadata": s.metadata,
        "agent_state": s.agent_state,
        "created_at": s.created_at,
        "expires_at": s.expires_at,
        "ended_at": s.ended_at,
    }


def session_from_row(row: sa.Row[Any]) -> Session:
    values = columns(sessions, row)
    values.pop("last_seq")
    return Session(**values)


def message_values(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "session_id": m.session_id,
        "seq": m.seq,
        "role": m.role,
        "text": m.text,
        "blocks": m.blocks,
        "channel": m.channel,
        "interrupted": m.interrupted,
        "created_at": m.created_at,
    }


def message_from_row(row: sa.Row[Any]) -> Message:
    return Message(**columns(messages, row))


def approval_values(a: Approval) -> dict[str, Any]:
    return {
        "session_id": a.session_id,
        "tool_call_id": a.tool_call_id,
        "name": a.name,
        "arguments": a.arguments,
        "status": a.status,
        "prompt": a.prompt,
        "decided_by": a.decided_by,
        "reason": a.reason,
        "created_at": a.created_at,
        "decided_at": a.decided_at,
    }


def approval_from_row(row: sa.Row[Any]) -> Approval:
    return Approval(**columns(approvals, row))


def transfer_values(t: TransferRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "session_id": t.session_id,
        "status": t.status,
        "target": t.target,
        "reason": t.reason,
        "data": t.data,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def transfer_from_row(row: sa.Row[Any]) -> TransferRecord:
    return TransferRecord(**columns(transfers, row))
