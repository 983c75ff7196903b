"""Per-session counters: ``sessions.stats`` (JSON, ``{}`` for existing rows).

Revision ID: 0002_session_stats
Revises: 0001_initial
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_session_stats"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "sessions", sa.Column("stats", _json(), nullable=False, server_default=sa.text("'{}'"))
    )


def downgrade() -> None:
    op.drop_column("sessions", "stats")
