"""Fixtures that start real local servers on 127.0.0.1 (port 0), one section per server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley.testing.fake_openai import FakeOpenAIServer

# --- fake OpenAI-compatible LLM server (parley.testing.fake_openai) ----------------------


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAIServer]:
    """A started scripted OpenAI server; with nothing scripted it echoes the user."""
    async with FakeOpenAIServer() as server:
        yield server
