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

Each method body is a synchronous function over one connection, run in one
transaction by the backend's ``Runner`` (``sql_engine``): on SQLite one hop to a
dedicated thread, on PostgreSQL ``run_sync`` on a pooled asyncpg connection.

Unknown session or message ids given to writes raise ``LookupError``; reads
return ``None``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, get_args
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

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
from parley.sessions.sql_engine import Runner, check_url, create_runner
from parley.sessions.sql_rows import check_aware, from_row, to_values
from parley.sessions.sql_schema import approvals, messages, sessions, transfers
from parley.sessions.stats import merged

log = logging.getLogger(__name__)

T = TypeVar("T")

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


# Hot statements, built once: parameters go in at execute time, so SQLAlchemy
# neither re-coerces values nor recomputes cache keys per call.
_BUMP_SEQ = (
    sa.update(sessions)
    .where(sessions.c.id == sa.bindparam("sid"))
    .values(last_seq=sessions.c.last_seq + 1)
    .returning(sessions.c.last_seq)
)
_INSERT_MESSAGE = sa.insert(messages)
_SESSION_BY_ID = sa.select(sessions).where(sessions.c.id == sa.bindparam("sid"))
_MESSAGES_OF = (
    sa.select(messages).where(messages.c.session_id == sa.bindparam("sid")).order_by(messages.c.seq)
)

# The sweeper's query: prebuilt, on the (status, expires_at) index.
_EXPIRING = (
    sa.select(sessions)
    .where(
        sessions.c.status == "active",
        sessions.c.expires_at.is_not(None),
        sessions.c.expires_at <= sa.bindparam("before", type_=sessions.c.expires_at.type),
    )
    .order_by(sessions.c.expires_at)
    .limit(sa.bindparam("limit"))
)


def new_id() -> str:
    return uuid4().hex


class SqlStore:
    """Durable sessions, messages, approvals and transfers in one SQL database."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        check_url(url)
        self.url = url
        self._clock: Clock = clock or SystemClock()
        self._runner: Runner | None = None

    # lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Open the database and migrate the schema to head; a no-op once started."""
        if self._runner is not None:
            return
        runner = create_runner(self.url)
        try:
            await runner.run(sql_migrate.upgrade_to_head, write=True)
            with contextlib.suppress(_RolledBack):
                await runner.run(_warm_up, write=True)
        except BaseException:
            await runner.close()
            raise
        self._runner = runner

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.close()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` if never migrated)."""
        return await self._read(sql_migrate.current_revision)

    def _require_runner(self) -> Runner:
        if self._runner is None:
            raise RuntimeError("SqlStore is not started: await store.start() first")
        return self._runner

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        return await self._require_runner().run(fn, write=True)

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        return await self._require_runner().run(fn, write=False)

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
        check_aware("expires_at", expires_at)
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
        insert = sa.insert(sessions).values(**to_values(sessions, session), last_seq=0)
        await self._write(lambda conn: conn.execute(insert))
        return session

    async def get_session(self, session_id: str) -> Session | None:
        return await self._read(lambda conn: _session_by_id(conn, session_id))

    async def get_session_by_resume_token(self, resume_token: str) -> Session | None:
        if not resume_token:
            return None
        query = sa.select(sessions).where(sessions.c.resume_token == resume_token).limit(1)
        return await self._read(lambda conn: _one_session(conn, query))

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
            check_aware(name, fields.get(name))
        update = sa.update(sessions).where(sessions.c.id == session_id).values(**fields)

        def run(conn: Connection) -> Session | None:
            if fields:
                conn.execute(update)
            return _session_by_id(conn, session_id)

        return await self._write(run)

    async def add_stats(self, session_id: str, counts: Mapping[str, int]) -> None:
        """Add a connection's counts to the session's ``stats`` (one write; the row is
        locked for it on PostgreSQL, so two workers adding at once both count)."""
        if not counts:
            return
        read = sa.select(sessions.c.stats).where(sessions.c.id == session_id).with_for_update()

        def run(conn: Connection) -> None:
            row = conn.execute(read).first()
            if row is not None:
                stats = merged(row[0], counts)
                conn.execute(
                    sa.update(sessions).where(sessions.c.id == session_id).values(stats=stats)
                )

        await self._write(run)

    async def end_session(self, session_id: str, reason: str) -> bool:
        update = (
            sa.update(sessions)
            .where(sessions.c.id == session_id, sessions.c.status != "ended")
            .values(status="ended", end_reason=reason, ended_at=self._clock.now())
        )
        return await self._write(lambda conn: conn.execute(update).rowcount == 1)

    async def list_expiring(self, before: datetime, limit: int = 500) -> list[Session]:
        check_aware("before", before)
        params = {"before": before, "limit": limit}

        def run(conn: Connection) -> list[Session]:
            return [from_row(Session, sessions, row) for row in conn.execute(_EXPIRING, params)]

        return await self._read(run)

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
        created_at = self._clock.now()

        def run(conn: Connection) -> Message:
            seq = conn.execute(_BUMP_SEQ, {"sid": session_id}).scalar()
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
                created_at=created_at,
            )
            conn.execute(_INSERT_MESSAGE, to_values(messages, message))
            return message

        return await self._write(run)

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

        def run(conn: Connection) -> bool:
            if changes:
                query = sa.update(messages).where(messages.c.id == message_id).values(**changes)
                return conn.execute(query).rowcount == 1
            query_id = sa.select(messages.c.id).where(messages.c.id == message_id)
            return conn.execute(query_id).first() is not None

        if not await self._write(run):
            raise LookupError(f"no message {message_id!r}")

    async def list_messages(self, session_id: str) -> list[Message]:
        def run(conn: Connection) -> list[Message]:
            rows = conn.execute(_MESSAGES_OF, {"sid": session_id})
            return [from_row(Message, messages, row) for row in rows]

        return await self._read(run)

    async def count_messages(self, session_id: str, roles: tuple[Role, ...] = ()) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(messages)
            .where(messages.c.session_id == session_id)
        )
        if roles:
            query = query.where(messages.c.role.in_(roles))
        return await self._read(lambda conn: int(conn.execute(query).scalar_one()))

    # approvals ----------------------------------------------------------------

    async def create_approval(self, approval: Approval) -> None:
        if approval.status not in APPROVAL_STATES:
            raise ValueError(f"unknown approval status {approval.status!r}")
        values = to_values(approvals, approval)
        values["created_at"] = approval.created_at or self._clock.now()

        def run(conn: Connection) -> None:
            if not _session_exists(conn, approval.session_id):
                raise LookupError(f"no session {approval.session_id!r}")
            conn.execute(sa.insert(approvals).values(**values))

        try:
            await self._write(run)
        except IntegrityError:
            raise ValueError(
                f"approval for tool call {approval.tool_call_id!r} already exists "
                f"in session {approval.session_id!r}"
            ) from None

    async def get_approval(self, session_id: str, tool_call_id: str) -> Approval | None:
        return await self._read(lambda conn: _select_approval(conn, session_id, tool_call_id))

    async def list_approvals(
        self, session_id: str, status: ApprovalState | None = None
    ) -> list[Approval]:
        query = sa.select(approvals).where(approvals.c.session_id == session_id)
        if status is not None:
            query = query.where(approvals.c.status == status)
        query = query.order_by(approvals.c.created_at, approvals.c.tool_call_id)
        return await self._read(
            lambda conn: [from_row(Approval, approvals, row) for row in conn.execute(query).all()]
        )

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

        def run(conn: Connection) -> tuple[bool, Approval | None]:
            won = conn.execute(claim).rowcount == 1
            return won, _select_approval(conn, session_id, tool_call_id)

        return await self._write(run)

    # transfers ----------------------------------------------------------------

    async def save_transfer(self, transfer: TransferRecord) -> None:
        """Insert or replace by id; ``created_at`` is kept from the first save."""
        now = self._clock.now()
        values = to_values(transfers, transfer)
        values["updated_at"] = now

        def run(conn: Connection) -> None:
            if not _session_exists(conn, transfer.session_id):
                raise LookupError(f"no session {transfer.session_id!r}")
            changed = {k: v for k, v in values.items() if k not in ("id", "created_at")}
            query = sa.update(transfers).where(transfers.c.id == transfer.id).values(**changed)
            if conn.execute(query).rowcount == 0:
                values["created_at"] = transfer.created_at or now
                conn.execute(sa.insert(transfers).values(**values))

        await self._write(run)

    async def get_transfer(self, transfer_id: str) -> TransferRecord | None:
        query = sa.select(transfers).where(transfers.c.id == transfer_id)

        def run(conn: Connection) -> TransferRecord | None:
            row = conn.execute(query).first()
            return from_row(TransferRecord, transfers, row) if row else None

        return await self._read(run)


# sync helpers (run inside a runner's transaction) ------------------------------


class _RolledBack(Exception):
    """Raised to end the warm-up transaction without keeping anything."""


def _warm_up(conn: Connection) -> None:
    """Run a turn's hot statements once in a transaction that is rolled back, so
    SQLAlchemy has compiled them before the first user's turn (~1 ms each, cold)."""
    sid = "parley-warm-up"
    now = datetime.now(UTC)
    session = Session(sid, "-", "active", "-", "-", created_at=now)
    conn.execute(sa.insert(sessions).values(**to_values(sessions, session), last_seq=0))
    seq = conn.execute(_BUMP_SEQ, {"sid": sid}).scalar() or 1
    message = Message(new_id(), sid, seq, "user", "-", created_at=now)
    conn.execute(_INSERT_MESSAGE, to_values(messages, message))
    _session_by_id(conn, sid)
    list(conn.execute(_MESSAGES_OF, {"sid": sid}))
    raise _RolledBack


def _one_session(conn: Connection, query: sa.Select[Any]) -> Session | None:
    row = conn.execute(query).first()
    return from_row(Session, sessions, row) if row else None


def _session_by_id(conn: Connection, session_id: str) -> Session | None:
    row = conn.execute(_SESSION_BY_ID, {"sid": session_id}).first()
    return from_row(Session, sessions, row) if row else None


def _session_exists(conn: Connection, session_id: str) -> bool:
    query = sa.select(sessions.c.id).where(sessions.c.id == session_id)
    return conn.execute(query).first() is not None


def _select_approval(conn: Connection, session_id: str, tool_call_id: str) -> Approval | None:
    query = sa.select(approvals).where(
        approvals.c.session_id == session_id, approvals.c.tool_call_id == tool_call_id
    )
    row = conn.execute(query).first()
    return from_row(Approval, approvals, row) if row else None
