"""SQLAlchemy Core tables the store queries, mirroring the Alembic migrations.

The migrations in ``parley/sessions/migrations/versions`` are the source of truth
for the database; these ``Table`` objects describe the same shape for queries (a
test compares the two). Timestamps are stored as UTC and always read back
timezone-aware, whatever the backend does with time zones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware-UTC datetime column: naive values are refused on write, and
    SQLite's naive strings come back tagged UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON everywhere, JSONB on PostgreSQL."""
    return sa.JSON().with_variant(JSONB(), "postgresql")


metadata = sa.MetaData(naming_convention=NAMING)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("agent", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("token_hash", sa.String(), nullable=False),
    sa.Column("resume_token", sa.String(), nullable=False, index=True),
    sa.Column("current_channel", sa.String(), nullable=False),
    sa.Column("end_reason", sa.Text(), nullable=True),
    sa.Column("template_vars", json_type(), nullable=False),
    sa.Column("metadata", json_type(), nullable=False),
    sa.Column("agent_state", json_type(), nullable=False),
    sa.Column("last_seq", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
    sa.Column("stats", json_type(), nullable=False, server_default=sa.text("'{}'")),
    # the deadline sweeper's query (active sessions by expiry), twice a second per worker
    sa.Index("ix_sessions_status_expires_at", "status", "expires_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column(
        "session_id",
        sa.String(),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("blocks", json_type(), nullable=False),
    sa.Column("channel", sa.String(), nullable=False),
    sa.Column("interrupted", sa.Boolean(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("session_id", "seq"),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column(
        "session_id",
        sa.String(),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("tool_call_id", sa.String(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("arguments", json_type(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("prompt", sa.Text(), nullable=False),
    sa.Column("decided_by", sa.String(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
)

transfers = sa.Table(
    "transfers",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column(
        "session_id",
        sa.String(),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("target", sa.Text(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("data", json_type(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
