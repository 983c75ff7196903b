"""Initial schema: sessions, messages, approvals, transfers.

Revision ID: 0001_initial
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("token_hash", sa.String(), nullable=False),
        sa.Column("resume_token", sa.String(), nullable=False),
        sa.Column("current_channel", sa.String(), nullable=False),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("template_vars", _json(), nullable=False),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("agent_state", _json(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("expires_at", tz, nullable=True),
        sa.Column("ended_at", tz, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_resume_token", "sessions", ["resume_token"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("blocks", _json(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name="fk_messages_session_id_sessions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("session_id", "seq", name="uq_messages_session_id_seq"),
    )
    op.create_table(
        "approvals",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("tool_call_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("arguments", _json(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("decided_at", tz, nullable=True),
        sa.PrimaryKeyConstraint("session_id", "tool_call_id", name="pk_approvals"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name="fk_approvals_session_id_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transfers"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name="fk_transfers_session_id_sessions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_transfers_session_id", "transfers", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_transfers_session_id", table_name="transfers")
    op.drop_table("transfers")
    op.drop_table("approvals")
    op.drop_table("messages")
    op.drop_index("ix_sessions_resume_token", table_name="sessions")
    op.drop_table("sessions")
