"""OpenAICompatibleLLM against the scripted fake OpenAI server, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from parley.engines.base import LLMChunk, ProviderError, TextDelta, ToolCallRequest
from parley.engines.openai_llm import ChunkDecoder, OpenAICompatibleLLM, ToolCallAccumulator
from parley.testing.fake_openai import (
    Done,
    FakeOpenAIServer,
    Finish,
    RawChunk,
    RawLine,
    Reply,
    Text,
    ToolCallChunk,
    ToolCallPart,
    ToolCallScript,
    Wait,
)

USER = [{"role": "user", "content": "What time is it in Paris?"}]
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
async def llm(fake_openai: FakeOpenAIServer) -> AsyncIterator[OpenAICompatibleLLM]:
    async with OpenAICompatibleLLM(fake_openai.base_url, "test-model", timeout_s=5) as adapter:
        yield adapter


async def collect(
    llm: OpenAICompatibleLLM,
    tools: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> list[LLMChunk]:
    return [chunk async for chunk in llm.stream(messages or USER, tools or [])]


async def collect_until_error(llm: OpenAICompatibleLLM) -> tuple[list[LLMChunk], ProviderError]:
    chunks: list[LLMChunk] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in llm.stream(USER, []):
            chunks.append(chunk)
    return chunks, caught.value


def texts(chunks: list[LLMChunk]) -> list[str]:
    return [c.text for c in chunks if isinstance(c, TextDelta)]


def calls(chunks: list[LLMChunk]) -> list[ToolCallRequest]:
    return [c for c in chunks if isinstance(c, ToolCallRequest)]


# --- text -----------------------------------------------------------------------------


async def test_streams_text_deltas_in_order(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(Reply.text("Hello", ", ", "world", "."))
    chunks = await collect(llm)
    assert chunks == [TextDelta("Hello"), TextDelta(", "), TextDelta("world"), TextDelta(".")]
    assert fake_openai.pending_replies == 0


async def test_yields_each_delta_before_the_rest_is_sent(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    go_on = asyncio.Event()
    fake_openai.script(Reply.of(Text("first"), Wait(go_on), Text(" second"), Finish(), Done()))
    stream = llm.stream(USER, [])
    assert await anext(stream) == TextDelta("first")  # the server is still waiting
    assert not go_on.is_set()
    go_on.set()
    assert [c async for c in stream] == [TextDelta(" second")]


async def test_ignores_usage_reasoning_comments_and_unknown_fields(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(
        Reply.of(
            RawLine(": keep-alive comment"),
            RawLine("event: message"),
            RawChunk({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]}),
            RawChunk(
                {
                    "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None}],
                    "system_fingerprint": "x",
                    "weird": [1, 2],
                }
            ),
            RawChunk({"choices": [{"index": 1, "delta": {"content": "other choice"}}]}),
            RawChunk({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
            RawChunk({"object": "chat.completion.chunk"}),
            RawLine('data:{"choices":[{"delta":{"content":"!"}}]}'),
            Finish(),
            Done(),
        )
    )
    assert await collect(llm) == [TextDelta("Hi"), TextDelta("!")]


async def test_usage_chunk_requested_by_extra_body_is_ignored(fake_openai: FakeOpenAIServer):
    fake_openai.script(Reply.text("ok"))
    extra = {"stream_options": {"include_usage": True}, "temperature": 0.2}
    async with OpenAICompatibleLLM(fake_openai.base_url, "m", extra_body=extra) as llm:
        assert await collect(llm) == [TextDelta("ok")]
    body = fake_openai.requests[0].body
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2


async def test_finish_reason_without_done_is_a_complete_answer(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(Reply.text("Bye", finish_reason="stop", done=False))
    assert await collect(llm) == [TextDelta("Bye")]


async def test_non_streamed_json_answer_is_accepted(fake_openai: FakeOpenAIServer):
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("get_time", {"city": "Paris"}), text=["On it"])
    )
    async with OpenAICompatibleLLM(fake_openai.base_url, "m", extra_body={"stream": False}) as llm:
        chunks = await collect(llm, tools=[TIME_TOOL])
    assert texts(chunks) == ["On it"]
    assert calls(chunks) == [
        ToolCallRequest("call_0", "get_time", {"city": "Paris"}, '{"city": "Paris"}')
    ]


# --- tool calls -------------------------------------------------------------------------


async def test_one_tool_call_streamed_in_fragments(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    script = ToolCallScript(
        "get_time", {"city": "Paris", "format": "24h"}, id="call_abc", fragments=5
    )
    reply = Reply.tool_calls(script, text=["Let me ", "check."])
    assert sum(isinstance(step, ToolCallChunk) for step in reply.steps) == 6
    fake_openai.script(reply)
    chunks = await collect(llm, tools=[TIME_TOOL])
    assert chunks == [
        TextDelta("Let me "),
        TextDelta("check."),
        ToolCallRequest(
            id="call_abc",
            name="get_time",
            arguments={"city": "Paris", "format": "24h"},
            raw_arguments='{"city": "Paris", "format": "24h"}',
        ),
    ]


async def test_two_tool_calls_with_interleaved_fragments(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(
        Reply.tool_calls(
            ToolCallScript("get_time", {"city": "Paris"}, id="a", fragments=4),
            ToolCallScript("get_weather", {"city": "Oslo", "unit": "C"}, id="b", fragments=2),
            interleave=True,
        )
    )
    result = calls(await collect(llm, tools=[TIME_TOOL]))
    assert [(c.id, c.name, c.arguments, c.error) for c in result] == [
        ("a", "get_time", {"city": "Paris"}, None),
        ("b", "get_weather", {"city": "Oslo", "unit": "C"}, None),
    ]


async def test_whole_tool_calls_in_one_chunk(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(
        Reply.tool_calls(
            ToolCallScript("get_time", {"city": "Rome"}, id="x"),
            ToolCallScript("hang_up", "", id="y"),
            whole=True,
        )
    )
    result = calls(await collect(llm, tools=[TIME_TOOL]))
    assert [(c.id, c.name, c.arguments, c.raw_arguments) for c in result] == [
        ("x", "get_time", {"city": "Rome"}, '{"city": "Rome"}'),
        ("y", "hang_up", {}, ""),
    ]
    assert all(c.error is None for c in result)


async def test_missing_index_uses_position_order(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(
        Reply.tool_calls(
            ToolCallScript("get_time", {"city": "Lima"}, id="p", fragments=3),
            ToolCallScript("get_weather", {"city": "Bern"}, id="q", fragments=2),
            with_index=False,
        ),
        Reply.tool_calls(
            ToolCallScript("get_time", {"city": "Kyiv"}, id="r"),
            ToolCallScript("get_weather", {"city": "Riga"}, id="s"),
            whole=True,
            with_index=False,
        ),
    )
    first = calls(await collect(llm, tools=[TIME_TOOL]))
    assert [(c.id, c.name, c.arguments) for c in first] == [
        ("p", "get_time", {"city": "Lima"}),
        ("q", "get_weather", {"city": "Bern"}),
    ]
    second = calls(await collect(llm, tools=[TIME_TOOL]))
    assert [(c.id, c.arguments) for c in second] == [
        ("r", {"city": "Kyiv"}),
        ("s", {"city": "Riga"}),
    ]


async def test_calls_sent_whole_one_per_chunk_without_index(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(
        Reply.of(
            ToolCallChunk((ToolCallPart(None, "c1", "get_time", '{"city": "Baku"}'),)),
            ToolCallChunk((ToolCallPart(None, "c2", "get_time", '{"city": "Doha"}'),)),
            Finish("tool_calls"),
            Done(),
        )
    )
    result = calls(await collect(llm, tools=[TIME_TOOL]))
    assert [(c.id, c.arguments) for c in result] == [
        ("c1", {"city": "Baku"}),
        ("c2", {"city": "Doha"}),
    ]


@pytest.mark.parametrize(
    ("raw", "error_part"),
    [
        ('{"city": "Par', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('"Paris"', "must be a JSON object, got str"),
    ],
)
async def test_bad_arguments_set_error_and_keep_raw(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM, raw: str, error_part: str
):
    fake_openai.script(Reply.tool_calls(ToolCallScript("get_time", raw, id="bad", fragments=2)))
    [call] = calls(await collect(llm, tools=[TIME_TOOL]))
    assert call.arguments == {}
    assert call.raw_arguments == raw
    assert call.error is not None and error_part in call.error


async def test_tool_call_without_name_is_flagged(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(
        Reply.of(ToolCallChunk((ToolCallPart(0, arguments="{}"),)), Finish("tool_calls"), Done())
    )
    [call] = calls(await collect(llm))
    assert call.id == "call_0"
    assert call.error == "the tool call has no function name"


def test_accumulator_new_id_at_same_index_starts_a_new_call():
    acc = ToolCallAccumulator()
    acc.add([{"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x":'}}])
    acc.add([{"index": 0, "id": "a", "function": {"name": "f", "arguments": " 1}"}}])
    acc.add([{"index": 0, "id": "b", "function": {"name": "g", "arguments": {"y": 2}}}])
    acc.add(["not a dict", {"index": 0, "function": "nonsense"}])
    assert [(c.id, c.name, c.arguments) for c in acc.finish()] == [
        ("a", "f", {"x": 1}),
        ("b", "g", {"y": 2}),
    ]


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (429, True), (500, True), (503, True)],
)
async def test_http_error_has_status_message_and_retryable(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM, status: int, retryable: bool
):
    fake_openai.script(Reply.http_error(status, "Incorrect API key provided: sk-***"))
    chunks, error = await collect_until_error(llm)
    assert chunks == []
    assert error.code == "llm_http_error"
    assert error.retryable is retryable
    assert str(error) == f"LLM provider returned HTTP {status}: Incorrect API key provided: sk-***"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "model 'llama9' not found"}, "model 'llama9' not found"),  # Ollama
        ({"detail": "Not authenticated"}, "Not authenticated"),  # FastAPI
        ("upstream exploded", "upstream exploded"),  # plain text
        ({"unexpected": 1}, '{"unexpected": 1}'),
    ],
)
async def test_http_error_message_from_other_body_shapes(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM, body: Any, message: str
):
    fake_openai.script(Reply.http_error(502, body=body))
    _, error = await collect_until_error(llm)
    assert str(error) == f"LLM provider returned HTTP 502: {message}"


async def test_stream_cut_mid_text_keeps_yielded_deltas(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(Reply.cut_after("The answer ", "is"))
    chunks, error = await collect_until_error(llm)
    assert chunks == [TextDelta("The answer "), TextDelta("is")]
    assert error.code == "llm_stream_cut"
    assert error.retryable
    assert "dropped mid-stream" in str(error)


async def test_stream_ending_without_done_or_finish_reason_is_cut(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(Reply.text("Half", finish_reason=None, done=False))
    chunks, error = await collect_until_error(llm)
    assert chunks == [TextDelta("Half")]
    assert error.code == "llm_stream_cut"
    assert "no [DONE] and no finish_reason" in str(error)


async def test_tool_calls_are_not_yielded_from_a_cut_stream(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(Reply.of(ToolCallChunk((ToolCallPart(0, "c", "get_time", '{"ci'),))))
    chunks, error = await collect_until_error(llm)
    assert chunks == []
    assert error.code == "llm_stream_cut"


async def test_malformed_data_line_is_a_bad_response(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(Reply.malformed("ok so far"), Reply.malformed(line="data: [1, 2]"))
    chunks, error = await collect_until_error(llm)
    assert chunks == [TextDelta("ok so far")]
    assert error.code == "llm_bad_response"
    assert not error.retryable
    assert "'{not json'" in str(error)
    _, error = await collect_until_error(llm)
    assert error.code == "llm_bad_response"
    assert "not a JSON object" in str(error)


async def test_error_object_inside_the_stream(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    fake_openai.script(Reply.of(Text("a"), RawChunk({"error": {"message": "overloaded"}})))
    chunks, error = await collect_until_error(llm)
    assert chunks == [TextDelta("a")]
    assert error.code == "llm_stream_error"
    assert str(error) == "LLM provider error in stream: overloaded"


async def test_read_timeout(fake_openai: FakeOpenAIServer):
    never = asyncio.Event()
    fake_openai.script(Reply.of(Text("Hmm"), Wait(never), Text("never sent")))
    async with OpenAICompatibleLLM(fake_openai.base_url, "m", timeout_s=0.5) as llm:
        chunks, error = await collect_until_error(llm)
    assert chunks == [TextDelta("Hmm")]
    assert error.code == "llm_timeout"
    assert error.retryable
    assert "did not answer within 0.5 s (ReadTimeout)" in str(error)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port that is bound but not listening: connecting is refused, with no race."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_connection_refused(refused_port: int):
    async with OpenAICompatibleLLM(f"http://127.0.0.1:{refused_port}/v1", "m") as llm:
        _, error = await collect_until_error(llm)
    assert error.code == "llm_unreachable"
    assert error.retryable
    assert f"cannot reach LLM at http://127.0.0.1:{refused_port}/v1/chat/completions" in str(error)


# --- request ------------------------------------------------------------------------------


async def test_request_body_has_model_messages_tools_and_stream(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    bare_tool = {"name": "hang_up", "parameters": {"type": "object", "properties": {}}}
    await collect(llm, tools=[TIME_TOOL, bare_tool])
    request = fake_openai.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body == {
        "model": "test-model",
        "messages": USER,
        "stream": True,
        "tools": [TIME_TOOL, {"type": "function", "function": bare_tool}],
        "tool_choice": "auto",
    }


async def test_no_tools_sends_no_tools_key(fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM):
    await collect(llm)
    assert set(fake_openai.requests[-1].body) == {"model", "messages", "stream"}


async def test_tool_results_are_sent_back(fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM):
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("get_time", {"city": "Paris"}, id="t1")),
        Reply.text("It is noon in Paris."),
    )
    [call] = calls(await collect(llm, tools=[TIME_TOOL]))
    follow_up = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw_arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"time": "12:00"}'},
    ]
    assert texts(await collect(llm, tools=[TIME_TOOL], messages=follow_up)) == [
        "It is noon in Paris."
    ]
    assert fake_openai.requests[-1].body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "t1",
        "content": '{"time": "12:00"}',
    }


@pytest.mark.parametrize("api_key", ["sk-secret", None])
async def test_authorization_header_only_with_api_key(
    fake_openai: FakeOpenAIServer, api_key: str | None
):
    async with OpenAICompatibleLLM(fake_openai.base_url + "/", "m", api_key=api_key) as llm:
        assert texts(await collect(llm)) == [
            "You",
            " said:",
            " What",
            " time",
            " is",
            " it",
            " in",
            " Paris?",
        ]
    request = fake_openai.requests[-1]
    assert request.path == "/v1/chat/completions"  # trailing slash of base_url dropped
    if api_key:
        assert request.headers["authorization"] == "Bearer sk-secret"
    else:
        assert "authorization" not in request.headers


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base_url": "127.0.0.1:11434/v1"}, "must start with http:// or https://"),
        ({"model": ""}, "model name must not be empty"),
        ({"timeout_s": 0}, "timeout_s must be positive"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], message: str):
    arguments: dict[str, Any] = {"base_url": "http://127.0.0.1:1/v1", "model": "m", **kwargs}
    with pytest.raises(ValueError, match=message):
        OpenAICompatibleLLM(**arguments)


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({"type": "retrieval"}, "not in OpenAI function format"),
        ({"type": "function", "function": {"description": "x"}}, "has no function name"),
    ],
)
async def test_bad_tool_is_rejected_before_the_request(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM, tool: dict[str, Any], message: str
):
    with pytest.raises(ValueError, match=message):
        await collect(llm, tools=[tool])
    assert fake_openai.requests == []


# --- lifecycle and logs ---------------------------------------------------------------------


async def test_shared_client_is_left_open(fake_openai: FakeOpenAIServer):
    async with httpx.AsyncClient() as client:
        async with OpenAICompatibleLLM(fake_openai.base_url, "m", client=client) as llm:
            await collect(llm)
        assert not client.is_closed
        fake_openai.script(Reply.text("again"))
        llm2 = OpenAICompatibleLLM(fake_openai.base_url, "m", client=client)
        assert texts(await collect(llm2)) == ["again"]


async def test_consumer_can_stop_early_and_reuse_the_adapter(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM
):
    never = asyncio.Event()
    fake_openai.script(Reply.of(Text("one"), Wait(never)), Reply.text("next"))
    stream = llm.stream(USER, [])
    assert await anext(stream) == TextDelta("one")
    await stream.aclose()  # barge-in: stop listening
    assert await collect(llm) == [TextDelta("next")]


async def test_logs_latency_at_debug(
    fake_openai: FakeOpenAIServer, llm: OpenAICompatibleLLM, caplog: pytest.LogCaptureFixture
):
    fake_openai.script(Reply.text("Hi"))
    with caplog.at_level(logging.DEBUG, logger="parley.engines.openai_llm"):
        await collect(llm)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("llm first token after ") for m in messages)
    assert any(m.startswith("llm done in ") and "finish_reason=stop" in m for m in messages)


def test_decoder_tracks_done_and_finish_reason():
    decoder = ChunkDecoder()
    assert decoder.feed_line('data: {"choices": [{"delta": {}, "finish_reason": "length"}]}') == ""
    assert decoder.finish_reason == "length" and not decoder.done
    assert decoder.feed_line("data: [DONE]") == "" and decoder.complete


# --- the fake server itself ---------------------------------------------------------------


async def test_fake_server_non_streamed_and_error_routes(fake_openai: FakeOpenAIServer):
    fake_openai.script(Reply.text("Hello", " there"))
    async with httpx.AsyncClient(base_url=fake_openai.base_url) as client:
        answer = await client.post("/chat/completions", json={"model": "m", "messages": USER})
        missing = await client.post("/embeddings", json={})
        not_json = await client.post("/chat/completions", content=b"{oops")
    assert answer.json()["object"] == "chat.completion"
    assert answer.json()["choices"][0]["message"] == {"role": "assistant", "content": "Hello there"}
    assert answer.json()["choices"][0]["finish_reason"] == "stop"
    assert (missing.status_code, not_json.status_code) == (404, 400)
    assert "'messages'" in not_json.json()["error"]["message"]
    assert [r.raw for r in fake_openai.requests][2] == b"{oops"


async def test_fake_server_without_echo_refuses_unscripted_requests():
    async with FakeOpenAIServer(echo=False) as server:
        async with OpenAICompatibleLLM(server.base_url, "m") as llm:
            _, error = await collect_until_error(llm)
    assert error.code == "llm_http_error"
    assert "no scripted reply left" in str(error)
