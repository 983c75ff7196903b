"""Alembic environment for Parley's store.

Parley runs migrations itself (``SqlStore.start`` → ``sql_migrate.upgrade_to_head``),
handing over an open connection in ``config.attributes["connection"]``. For
developers running the ``alembic`` command by hand, pass the database with
``-x url=sqlite:///path`` (or set ``sqlalchemy.url``).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from parley.sessions.sql_engine import is_sqlite, sqlite_engine
from parley.sessions.sql_schema import metadata

config = context.config


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        render_as_batch=True,
        literal_binds=connection is None,
    )


def _run_on(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("pass the database with -x url=... or set sqlalchemy.url")
    return url


def _run_with_sqlite(url: str) -> None:
    engine = sqlite_engine(url)
    try:
        with engine.begin() as conn:
            _run_on(conn)
    finally:
        engine.dispose()


async def _run_with_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run_on)
    finally:
        await engine.dispose()


def _main() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run_on(given)
    elif context.is_offline_mode():
        _configure(url=_url())
        with context.begin_transaction():
            context.run_migrations()
    elif is_sqlite(_url()):
        _run_with_sqlite(_url())
    else:
        asyncio.run(_run_with_url(_url()))


_main()
