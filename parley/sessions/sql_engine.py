"""Where the store's SQL runs: one ``Runner`` per backend, same sync method bodies.

Every store method is one synchronous function over a SQLAlchemy ``Connection``,
run inside one transaction by a runner:

- ``SqliteRunner`` (SQLite, the default): one dedicated thread holding one
  connection; each call is a single hop to that thread. Writers of this process are
  serialised by the thread instead of spinning on SQLite's write lock, and there is
  no async driver, greenlet or connection pool in the way (measured: ~3 ms of CPU
  per ``add_message`` through the async stack, a fraction of that here). WAL
  journal, a busy timeout (other *processes* on the same file queue on it), foreign
  keys on; a write begins with ``BEGIN IMMEDIATE`` so it never has to upgrade a
  read lock.
- ``AsyncEngineRunner`` (PostgreSQL, asyncpg): a pooled async engine; the function
  runs through ``AsyncConnection.run_sync``. READ COMMITTED is enough for the
  store's single-statement conditional updates.

URLs: ``sqlite:///path`` (``sqlite+aiosqlite:///path`` is accepted as an alias) and
``postgresql+asyncpg://user@host/db``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from parley.config import DATABASE_URL_PREFIXES, POSTGRES_URL_PREFIX, SQLITE_URL_PREFIXES

SQLITE_BUSY_TIMEOUT_S = 30.0
WRITE_KEY = "parley_write"

T = TypeVar("T")


def check_url(url: str) -> None:
    if not url.startswith(DATABASE_URL_PREFIXES):
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ValueError(
            f"unsupported database URL scheme {scheme!r}: "
            f"use sqlite:///<path> or {POSTGRES_URL_PREFIX}user@host/db"
        )


def is_sqlite(url: str) -> bool:
    return url.startswith(SQLITE_URL_PREFIXES)


class Runner(Protocol):
    """Runs a sync function over a connection, inside one transaction."""

    async def run(self, fn: Callable[[Connection], T], *, write: bool) -> T: ...

    async def close(self) -> None: ...


def create_runner(url: str) -> Runner:
    check_url(url)
    if is_sqlite(url):
        return SqliteRunner(url)
    return AsyncEngineRunner(create_async_engine(url, pool_pre_ping=True))


class AsyncEngineRunner:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        async with self._engine.connect() as conn, conn.begin():
            return await conn.run_sync(fn)

    async def close(self) -> None:
        await self._engine.dispose()


class SqliteRunner:
    """One thread, one connection: every call is one hop to that thread."""

    def __init__(self, url: str) -> None:
        self._engine = sqlite_engine(url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-sqlite")
        self._conn: Connection | None = None

    async def run(self, fn: Callable[[Connection], T], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._call, fn, write)

    def _call(self, fn: Callable[[Connection], T], write: bool) -> T:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._engine.connect()
        conn.info[WRITE_KEY] = write
        with conn.begin():
            return fn(conn)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._engine.dispose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)


def sqlite_engine(url: str) -> Engine:
    """A sync pysqlite engine whose connections leave transactions to the caller."""
    parsed = make_url(url).set(drivername="sqlite")
    database = parsed.database or ""
    on_disk = database not in ("", ":memory:") and not database.startswith("file:")
    if on_disk:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        poolclass=sa.pool.StaticPool,
    )

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get(WRITE_KEY) else "BEGIN")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: the runner issues BEGIN / COMMIT itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if on_disk:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
