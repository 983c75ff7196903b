"""Store and coordinator fixtures, run against real SQLite, PostgreSQL and Redis.

- ``db_url``: a database URL, parametrized ``sqlite`` (a file under ``tmp_path``)
  and ``postgres`` (a freshly created, uniquely named database, dropped after).
- ``store``: a started ``SqlStore`` on ``db_url``.
- ``coordinator``: a started coordinator, parametrized ``local`` and ``redis``
  (keys under a unique prefix, deleted after).

PostgreSQL and Redis must be running (CI starts them); if they are not, the test
fails saying so instead of skipping. Override the servers with
``PARLEY_TEST_POSTGRES_URL`` / ``PARLEY_TEST_REDIS_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from parley.sessions import Coordinator, LocalCoordinator, RedisCoordinator, SqlStore

POSTGRES_SERVER_URL = os.environ.get(
    "PARLEY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_SERVER_URL = os.environ.get("PARLEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT_S = 5.0


def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file inside the test's temporary directory."""
    return f"sqlite+aiosqlite:///{tmp_path / 'parley.db'}"


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def postgres_url() -> AsyncIterator[str]:
    """Create a uniquely named PostgreSQL database, yield its URL, drop it after.

    ``async with postgres_url() as url: ...``
    """
    server = make_url(POSTGRES_SERVER_URL)
    name = f"parley_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_SERVER_URL), timeout=CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {server.render_as_string()}: {exc!r}. "
            "These tests need a real server (CI starts one); "
            "set PARLEY_TEST_POSTGRES_URL to point elsewhere.",
            pytrace=False,
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def redis_url() -> str:
    return REDIS_SERVER_URL


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[str]:
    """A unique key prefix on the test Redis; every key under it is deleted after."""
    prefix = f"parley:test:{uuid.uuid4().hex[:16]}:"
    client = aioredis.Redis.from_url(REDIS_SERVER_URL, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        await client.aclose()
        pytest.fail(
            f"Redis is not reachable at {REDIS_SERVER_URL}: {exc!r}. "
            "These tests need a real server (CI starts one); "
            "set PARLEY_TEST_REDIS_URL to point elsewhere.",
            pytrace=False,
        )
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        async with postgres_url() as url:
            yield url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[SqlStore]:
    sql_store = SqlStore(db_url)
    await sql_store.start()
    try:
        yield sql_store
    finally:
        await sql_store.close()


@pytest.fixture(params=["local", "redis"])
async def coordinator(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    if request.param == "local":
        local = LocalCoordinator()
        await local.start()
        yield local
        await local.close()
        return
    async with redis_prefix() as prefix:
        shared = RedisCoordinator(REDIS_SERVER_URL, prefix=prefix)
        await shared.start()
        try:
            yield shared
        finally:
            await shared.close()
