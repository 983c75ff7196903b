"""Run the Alembic migrations programmatically, on a connection the store opened.

No ``alembic.ini`` is needed: the script location is this package's ``migrations``
directory, so it works from an installed wheel. Runs inside the caller's
transaction; on PostgreSQL a transaction-scoped advisory lock keeps two workers
from migrating at once (SQLite gets the same from ``BEGIN IMMEDIATE``).
Alembic is imported lazily, after its loggers are turned down to WARNING (it
logs plugin setup at INFO on import).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x70617231  # arbitrary, the same in every worker


def _config() -> Config:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    config = _config()
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(connection: Connection) -> str | None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema to head (a no-op at head). Call inside a transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    before = current_revision(connection)
    head = head_revision()
    if before == head:
        return
    from alembic import command

    config = _config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
    log.info("database schema migrated from %s to %s", before or "empty", head)
