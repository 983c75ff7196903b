"""Create the async engine for a store URL, with the per-backend settings it needs.

SQLite (aiosqlite): WAL journal, a busy timeout, foreign keys on, and transactions
that SQLAlchemy begins itself. A connection marked ``parley_write=True`` begins
with ``BEGIN IMMEDIATE``, so concurrent writers queue on the busy timeout instead
of failing with "database is locked" when a read transaction tries to upgrade.
PostgreSQL (asyncpg): pre-ping pooled connections; READ COMMITTED is enough for
the store's single-statement conditional updates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_PREFIX = "sqlite+aiosqlite://"
POSTGRES_PREFIX = "postgresql+asyncpg://"
SQLITE_BUSY_TIMEOUT_S = 30.0
WRITE_OPTION = "parley_write"


def check_url(url: str) -> None:
    if not url.startswith((SQLITE_PREFIX, POSTGRES_PREFIX)):
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}: "
            f"use {SQLITE_PREFIX}/<path> or {POSTGRES_PREFIX}user@host/db"
        )


def create_engine(url: str) -> AsyncEngine:
    check_url(url)
    if url.startswith(SQLITE_PREFIX):
        return _sqlite_engine(url)
    return create_async_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: str) -> AsyncEngine:
    database = make_url(url).database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    if on_disk:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if on_disk:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
