"""An index for the deadline sweeper: active sessions by expiry.

Revision ID: 0003_expiry_index
Revises: 0002_session_stats
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0003_expiry_index"
down_revision: str | None = "0002_session_stats"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_sessions_status_expires_at", "sessions", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_status_expires_at", table_name="sessions")
