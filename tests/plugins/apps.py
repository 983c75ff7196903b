"""Fixtures that run the whole app on a real socket with real HTTP clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from parley.app import create_app
from parley.channels.services import Services
from parley.client import ParleyClient
from parley.config import Settings
from parley.testing import FakeClock
from parley.testing.servers import serve_app
from tests.plugins.stores import postgres_url, redis_prefix, redis_url, sqlite_url


@dataclass
class RunningApp:
    base_url: str
    services: Services
    clock: FakeClock | None

    def client(self) -> ParleyClient:
        return ParleyClient(self.base_url)


AppFactory = Callable[..., AbstractAsyncContextManager[RunningApp]]


@pytest.fixture(params=["sqlite+local", "postgres+redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Settings that pick the store and the coordinator: both embedded, or both real servers."""
    if request.param == "sqlite+local":
        yield {"database_url": sqlite_url(tmp_path)}
        return
    # a Redis key prefix of its own: tests (and test runs) sharing the server never see
    # each other's keys (the transfer index, call keys), and every key is deleted after
    async with postgres_url() as url, redis_prefix() as prefix:
        yield {"database_url": url, "redis_url": redis_url(), "redis_prefix": prefix}


@pytest.fixture
def make_app(tmp_path: Path, backend: dict[str, Any]) -> AppFactory:
    @asynccontextmanager
    async def factory(clock: FakeClock | None = None, **overrides: Any) -> AsyncIterator[RunningApp]:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", **backend, **overrides}
        settings = Settings(**values)
        app = create_app(settings, clock=clock)
        async with serve_app(app) as base_url:
            yield RunningApp(base_url, app.state.services, clock)

    return factory


@pytest.fixture
async def running(make_app: AppFactory) -> AsyncIterator[RunningApp]:
    async with make_app() as app:
        yield app


@pytest.fixture
async def client(running: RunningApp) -> AsyncIterator[ParleyClient]:
    c = running.client()
    yield c
    await c.aclose()
