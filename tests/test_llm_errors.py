"""A provider error at run time: the customer gets a polite sentence, the log gets the
provider's text (which can echo part of the key), and no API response carries it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from parley.testing.fake_openai import FakeOpenAIServer, Reply
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_chat_api import collect, one

RIGHT_KEY = "sk-right-0123456789"
WRONG_KEY = "sk-wrong-9876543210"


@pytest.fixture
async def strict_openai() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(api_key=RIGHT_KEY) as server:
        yield server


@pytest.fixture
async def wrong_key_app(
    make_app: AppFactory, strict_openai: FakeOpenAIServer
) -> AsyncIterator[RunningApp]:
    async with make_app(
        llm_base_url=strict_openai.base_url, llm_model="fake-model", llm_api_key=WRONG_KEY
    ) as app:
        yield app


async def test_a_refused_key_reaches_the_customer_as_a_polite_sentence(
    wrong_key_app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    client = wrong_key_app.client()
    caplog.set_level(logging.WARNING)
    try:
        session = await client.create_session("demo")
        events = await collect(client.send("hello"))
        error = one(events, "error")
        assert error["code"] == "llm_http_error"
        assert error["message"].startswith("Sorry, I can't answer right now")
        assert events[-1].data["status"] == "error"
        history = await client.messages()
    finally:
        await client.aclose()
    # the provider's words, with part of the key, are in the log ...
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Incorrect API key provided: sk-***10" in logged
    # ... and nowhere a customer or an API client can see them
    async with httpx.AsyncClient(base_url=wrong_key_app.base_url) as http:
        page = (
            await http.get(
                f"/v1/sessions/{session['session_id']}",
                headers={"Authorization": f"Bearer {session['session_token']}"},
            )
        ).text
    seen = json.dumps([e.data for e in events]) + json.dumps(history) + page
    for secret in ("sk-", "Incorrect API key", "platform.openai.com", "HTTP 401"):
        assert secret not in seen


async def test_a_server_error_hides_its_details(
    make_app: AppFactory, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.script(Reply.http_error(503, "upstream pool exhausted at 10.0.0.7"))
    async with make_app(llm_base_url=fake_openai.base_url, llm_model="fake-model") as app:
        client = app.client()
        try:
            await client.create_session("demo")
            events = await collect(client.send("hello"))
        finally:
            await client.aclose()
    error = one(events, "error")
    assert error["code"] == "llm_http_error"
    assert "10.0.0.7" not in error["message"] and "503" not in error["message"]
    assert error["message"].endswith("Please try again in a moment.")
