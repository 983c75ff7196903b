"""``probe_llm``: one cheap call finds a misconfigured LLM and names the setting to change.

Against the local OpenAI-protocol server (``parley.testing.fake_openai``), which refuses a
wrong key and an unknown model the way OpenAI does."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from parley.llm_probe import probe_llm
from parley.testing.fake_openai import FakeOpenAIServer

KEY = "sk-right-0123456789"


@pytest.fixture
async def openai_like() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(api_key=KEY, models=["gpt-4o-mini", "gpt-4o"]) as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_good_configuration_passes_with_one_models_call(
    openai_like: FakeOpenAIServer,
) -> None:
    assert await probe_llm(openai_like.base_url, "gpt-4o-mini", KEY) is None
    assert [(r.method, r.path) for r in openai_like.requests] == [("GET", "/v1/models")]
    assert openai_like.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_a_wrong_key_names_the_key_setting_and_never_echoes_it(
    openai_like: FakeOpenAIServer,
) -> None:
    problem = await probe_llm(openai_like.base_url, "gpt-4o-mini", "sk-wrong-9876543210")
    assert problem == (
        f"PARLEY_LLM_API_KEY: the LLM at {openai_like.base_url} refused the key (HTTP 401)"
    )


async def test_a_missing_key_says_it_is_not_set(openai_like: FakeOpenAIServer) -> None:
    problem = await probe_llm(openai_like.base_url, "gpt-4o-mini", None)
    assert problem is not None
    assert problem.startswith("PARLEY_LLM_API_KEY: ")
    assert "PARLEY_LLM_API_KEY is not set" in problem


async def test_an_unknown_model_lists_what_is_offered(openai_like: FakeOpenAIServer) -> None:
    problem = await probe_llm(openai_like.base_url, "gpt-5-turbo", KEY)
    assert problem == (
        f"PARLEY_LLM_MODEL: the LLM at {openai_like.base_url} has no model 'gpt-5-turbo' "
        "(it offers: gpt-4o, gpt-4o-mini)"
    )


async def test_an_ollama_style_tag_counts_as_the_model() -> None:
    async with FakeOpenAIServer(models=["llama3.1:latest"]) as server:
        assert await probe_llm(server.base_url, "llama3.1", None) is None


async def test_without_a_models_route_one_token_completion_decides() -> None:
    async with FakeOpenAIServer(models=["tiny"], models_route=False) as server:
        assert await probe_llm(server.base_url, "tiny", None) is None
        sent = server.requests[-1]
        assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
        assert sent.body["max_tokens"] == 1 and sent.body["model"] == "tiny"
        problem = await probe_llm(server.base_url, "huge", None)
        base = server.base_url
    assert problem is not None
    assert problem.startswith(f"PARLEY_LLM_MODEL: the LLM at {base} has no model 'huge'")
    assert "does not exist" in problem


async def test_a_url_without_v1_names_the_base_url(openai_like: FakeOpenAIServer) -> None:
    base = f"http://127.0.0.1:{openai_like.port}/api"
    problem = await probe_llm(base, "gpt-4o-mini", KEY)
    assert problem is not None
    assert problem.startswith(f"PARLEY_LLM_BASE_URL: no chat-completions API at {base} (HTTP 404")


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("127.0.0.1:8089/v1", "PARLEY_LLM_BASE_URL: '127.0.0.1:8089/v1' must start with http"),
        ("ftp://example.org/v1", "PARLEY_LLM_BASE_URL: 'ftp://example.org/v1' must start with"),
    ],
)
async def test_a_url_without_a_scheme(base: str, expected: str) -> None:
    problem = await probe_llm(base, "m", None)
    assert problem is not None and problem.startswith(expected)


async def test_nothing_listening_is_unreachable() -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    problem = await probe_llm(base, "m", None)
    assert problem == f"PARLEY_LLM_BASE_URL: cannot reach the LLM at {base}: connection refused"
