"""``SqlStore``: the ``Store`` protocol on SQLAlchemy async (SQLite or PostgreSQL).

Every method is one short transaction. Two places need care under concurrent
writers, in one process or many:

- message ``seq``: each session row carries ``last_seq``; ``add_message`` bumps it
  with ``UPDATE ... RETURNING`` and inserts the message in the same transaction,
  so the row lock (PostgreSQL) or the write lock (SQLite) hands out consecutive,
  distinct numbers; ``UNIQUE (session_id, seq)`` backs it up.
- ``claim_approval`` and ``end_session``: a conditional ``UPDATE`` that only the
  first caller can pass (``WHERE status = 'pending'`` / ``<> 'ended'``); the
  rowcount says who won, and the loser reads back the winner's row.

Unknown session or message ids given to writes raise ``LookupError``; reads
return ``None``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, get_args
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from parley.clock import Clock, SystemClock
from parley.sessions import sql_migrate
from parley.sessions.records import (
    Approval,
    ApprovalState,
    Message,
    Role,
    Session,
    SessionStatus,
    TransferRecord,
)
from parley.sessions.sql_engine import WRITE_OPTION, check_url, create_engine
from parley.sessions.sql_schema import approvals, messages, sessions, transfers

log = logging.getLogger(__name__)

ROLES: frozenset[str] = frozenset(get_args(Role))
APPROVAL_STATES: frozenset[str] = frozenset(get_args(ApprovalState))
DECISIONS: frozenset[str] = APPROVAL_STATES - {"pending"}
SESSION_STATES: frozenset[str] = frozenset(get_args(SessionStatus))
SESSION_UPDATABLE = frozenset(
    {
        "status",
        "end_reason",
        "ended_at",
        "current_channel",
        "agent_state",
        "expires_at",
        "resume_token",
        "metadata",
    }
)


def new_id() -> str:
    return uuid4().hex


class SqlStore:
    """Durable sessions, messages, approvals and transfers in one SQL database."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        check_url(url)
        self.url = url
        self._clock: Clock = clock or SystemClock()
        self._engine: AsyncEngine | None = None

    # lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Open the engine and migrate the schema to head; a no-op once started."""
        if self._engine is not None:
            return
        engine = create_engine(self.url)
        try:
            async with self._begin_write(engine) as conn:
                await conn.run_sync(sql_migrate.upgrade_to_head)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` if never migrated)."""
        async with self._read() as conn:
            return await conn.run_sync(sql_migrate.current_revision)

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("SqlStore is not started: await store.start() first")
        return self._engine

    @staticmethod
    @asynccontextmanager
    async def _begin_write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        async with engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    def _write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return self._begin_write(self._require_engine())

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._require_engine().connect() as conn:
            yield conn

    # sessions -----------------------------------------------------------------

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
    ) -> Session:
        _check_aware("expires_at", expires_at)
        session = Session(
            id=new_id(),
            agent=agent,
            status="active",
            token_hash=token_hash,
            resume_token=resume_token,
            current_channel=channel,
            template_vars=dict(template_vars),
            metadata=dict(metadata),
            agent_state={},
            created_at=self._clock.now(),
            expires_at=expires_at,
        )
        values = _session_values(session)
        async with self._write() as conn:
            await conn.execute(sa.insert(sessions).values(**values, last_seq=0))
        return session

    async def get_session(self, session_id: str) -> Session | None:
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))
            ).first()
        return _session_from_row(row) if row else None

    async def get_session_by_resume_token(self, resume_token: str) -> Session | None:
        if not resume_token:
            return None
        query = sa.select(sessions).where(sessions.c.resume_token == resume_token).limit(1)
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return _session_from_row(row) if row else None

    async def update_session(self, session_id: str, **fields: Any) -> Session | None:
        unknown = set(fields) - SESSION_UPDATABLE
        if unknown:
            raise ValueError(
                f"cannot update session field(s) {sorted(unknown)}; "
                f"allowed: {sorted(SESSION_UPDATABLE)}"
            )
        if "status" in fields and fields["status"] not in SESSION_STATES:
            raise ValueError(f"unknown session status {fields['status']!r}")
        for name in ("ended_at", "expires_at"):
            _check_aware(name, fields.get(name))
        async with self._write() as conn:
            if fields:
                await conn.execute(
                    sa.update(sessions).where(sessions.c.id == session_id).values(**fields)
                )
            row = (
                await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))
            ).first()
        return _session_from_row(row) if row else None

    async def end_session(self, session_id: str, reason: str) -> bool:
        update = (
            sa.update(sessions)
            .where(sessions.c.id == session_id, sessions.c.status != "ended")
            .values(status="ended", end_reason=reason, ended_at=self._clock.now())
        )
        async with self._write() as conn:
            result = await conn.execute(update)
        return result.rowcount == 1

    # messages -----------------------------------------------------------------

    async def add_message(
        self,
        session_id: str,
        role: Role,
        text: str,
        *,
        blocks: list[dict[str, Any]] | None = None,
        channel: str = "chat",
        interrupted: bool = False,
    ) -> Message:
        if role not in ROLES:
            raise ValueError(f"unknown message role {role!r}; expected one of {sorted(ROLES)}")
        bump = (
            sa.update(sessions)
            .where(sessions.c.id == session_id)
            .values(last_seq=sessions.c.last_seq + 1)
            .returning(sessions.c.last_seq)
        )
        async with self._write() as conn:
            seq = (await conn.execute(bump)).scalar()
            if seq is None:
                raise LookupError(f"no session {session_id!r}")
            message = Message(
                id=new_id(),
                session_id=session_id,
                seq=seq,
                role=role,
                text=text,
                blocks=list(blocks or []),
                channel=channel,
                interrupted=interrupted,
                created_at=self._clock.now(),
            )
            await conn.execute(sa.insert(messages).values(**_message_values(message)))
        return message

    async def update_message(
        self,
        message_id: str,
        *,
        text: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
        interrupted: bool | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if text is not None:
            changes["text"] = text
        if blocks is not None:
            changes["blocks"] = list(blocks)
        if interrupted is not None:
            changes["interrupted"] = interrupted
        async with self._write() as conn:
            if changes:
                query = sa.update(messages).where(messages.c.id == message_id).values(**changes)
                found = (await conn.execute(query)).rowcount == 1
            else:
                query_id = sa.select(messages.c.id).where(messages.c.id == message_id)
                found = (await conn.execute(query_id)).first() is not None
        if not found:
            raise LookupError(f"no message {message_id!r}")

    async def list_messages(self, session_id: str) -> list[Message]:
        query = (
            sa.select(messages).where(messages.c.session_id == session_id).order_by(messages.c.seq)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_message_from_row(row) for row in rows]

    async def count_messages(self, session_id: str, roles: tuple[Role, ...] = ()) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(messages)
            .where(messages.c.session_id == session_id)
        )
        if roles:
            query = query.where(messages.c.role.in_(roles))
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar_one())

    # approvals ----------------------------------------------------------------

    async def create_approval(self, approval: Approval) -> None:
        if approval.status not in APPROVAL_STATES:
            raise ValueError(f"unknown approval status {approval.status!r}")
        values = _approval_values(approval)
        values["created_at"] = approval.created_at or self._clock.now()
        try:
            async with self._write() as conn:
                if not await _session_exists(conn, approval.session_id):
                    raise LookupError(f"no session {approval.session_id!r}")
                await conn.execute(sa.insert(approvals).values(**values))
        except IntegrityError:
            raise ValueError(
                f"approval for tool call {approval.tool_call_id!r} already exists "
                f"in session {approval.session_id!r}"
            ) from None

    async def get_approval(self, session_id: str, tool_call_id: str) -> Approval | None:
        async with self._read() as conn:
            return await _select_approval(conn, session_id, tool_call_id)

    async def list_approvals(
        self, session_id: str, status: ApprovalState | None = None
    ) -> list[Approval]:
        query = sa.select(approvals).where(approvals.c.session_id == session_id)
        if status is not None:
            query = query.where(approvals.c.status == status)
        query = query.order_by(approvals.c.created_at, approvals.c.tool_call_id)
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        return [_approval_from_row(row) for row in rows]

    async def claim_approval(
        self,
        session_id: str,
        tool_call_id: str,
        status: ApprovalState,
        decided_by: str,
        reason: str | None = None,
    ) -> tuple[bool, Approval | None]:
        if status not in DECISIONS:
            raise ValueError(f"an approval can only be claimed as {sorted(DECISIONS)}")
        claim = (
            sa.update(approvals)
            .where(
                approvals.c.session_id == session_id,
                approvals.c.tool_call_id == tool_call_id,
                approvals.c.status == "pending",
            )
            .values(
                status=status,
                decided_by=decided_by,
                reason=reason,
                decided_at=self._clock.now(),
            )
        )
        async with self._write() as conn:
            won = (await conn.execute(claim)).rowcount == 1
            record = await _select_approval(conn, session_id, tool_call_id)
        return won, record

    # transfers ----------------------------------------------------------------

    async def save_transfer(self, transfer: TransferRecord) -> None:
        """Insert or replace by id; ``created_at`` is kept from the first save."""
        now = self._clock.now()
        values = _transfer_values(transfer)
        values["updated_at"] = now
        async with self._write() as conn:
            if not await _session_exists(conn, transfer.session_id):
                raise LookupError(f"no session {transfer.session_id!r}")
            changed = {k: v for k, v in values.items() if k not in ("id", "created_at")}
            query = sa.update(transfers).where(transfers.c.id == transfer.id).values(**changed)
            if (await conn.execute(query)).rowcount == 0:
                values["created_at"] = transfer.created_at or now
                await conn.execute(sa.insert(transfers).values(**values))

    async def get_transfer(self, transfer_id: str) -> TransferRecord | None:
        query = sa.select(transfers).where(transfers.c.id == transfer_id)
        async with self._read() as conn:
            row = (await conn.execute(query)).first()
        return _transfer_from_row(row) if row else None


# rows <-> records ------------------------------------------------------------


def _check_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} is a naive datetime; pass a timezone-aware UTC one")


async def _session_exists(conn: AsyncConnection, session_id: str) -> bool:
    query = sa.select(sessions.c.id).where(sessions.c.id == session_id)
    return (await conn.execute(query)).first() is not None


async def _select_approval(
    conn: AsyncConnection, session_id: str, tool_call_id: str
) -> Approval | None:
    query = sa.select(approvals).where(
        approvals.c.session_id == session_id, approvals.c.tool_call_id == tool_call_id
    )
    row = (await conn.execute(query)).first()
    return _approval_from_row(row) if row else None


def _columns(table: sa.Table, row: sa.Row[Any]) -> dict[str, Any]:
    mapping = row._mapping
    return {c.name: mapping[c] for c in table.columns}


def _session_values(s: Session) -> dict[str, Any]:
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


def _session_from_row(row: sa.Row[Any]) -> Session:
    values = _columns(sessions, row)
    values.pop("last_seq")
    return Session(**values)


def _message_values(m: Message) -> dict[str, Any]:
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


def _message_from_row(row: sa.Row[Any]) -> Message:
    return Message(**_columns(messages, row))


def _approval_values(a: Approval) -> dict[str, Any]:
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


def _approval_from_row(row: sa.Row[Any]) -> Approval:
    return Approval(**_columns(approvals, row))


def _transfer_values(t: TransferRecord) -> dict[str, Any]:
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


def _transfer_from_row(row: sa.Row[Any]) -> TransferRecord:
    return TransferRecord(**_columns(transfers, row))
