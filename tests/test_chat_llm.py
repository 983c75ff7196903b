"""The demo agent on the LLM brain, against a local server speaking OpenAI's streaming protocol."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley.client import ApiFailure, ParleyClient
from parley.testing.clock import FakeClock
from parley.testing.fake_openai import FakeOpenAIServer, Reply, ToolCallScript, Wait
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_chat_api import collect, names, one


@pytest.fixture
async def llm_app(
    make_app: AppFactory, fake_openai: FakeOpenAIServer
) -> AsyncIterator[RunningApp]:
    async with make_app(llm_base_url=fake_openai.base_url, llm_model="fake-model") as app:
        yield app


@pytest.fixture
async def llm_client(llm_app: RunningApp) -> AsyncIterator[ParleyClient]:
    client = llm_app.client()
    await client.create_session("demo")
    yield client
    await client.aclose()


def tool_messages(request_body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request_body["messages"] if m["role"] == "tool"]


async def test_streamed_tool_calls_are_run_and_fed_back(
    llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.script(
        Reply.tool_calls(
            ToolCallScript("check_availability",
                           {"date": "next wednesday", "time": "19:00", "party_size": 2}, id="c1"),
            ToolCallScript("show_menu", {}, id="c2"),
            text=("Let me ", "check. "),
            interleave=True,
        ),
        Reply.text("Friday at seven ", "is free."),
    )
    events = await collect(llm_client.send("table for two on friday at 7?"))
    assert [d.data["text"] for d in events if d.event == "assistant_delta"][:2] == ["Let me ", "check. "]
    done = [e.data for e in events if e.event == "tool_call_completed"]
    assert [(d["name"], d["status"]) for d in done] == [("check_availability", "ok"), ("show_menu", "ok")]
    assert one(events, "ui_op")["op"]["kind"] == "carousel"
    assert events[-1].event == "turn_end" and events[-1].data["status"] == "completed"
    second = fake_openai.requests[-1].body
    fed = tool_messages(second)
    assert [m["tool_call_id"] for m in fed] == ["c1", "c2"]
    assert json.loads(fed[0]["content"])["result"]["available"] is True
    assert second["tools"] and second["stream"] is True
    history = await llm_client.messages()
    assert [m["role"] for m in history] == ["assistant", "user", "assistant", "tool", "tool", "assistant"]


async def test_approval_then_model_continues(
    llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    args = {"name": "Ann", "date": "next wednesday", "time": "19:00", "party_size": 2}
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("book_table", args, id="b1")),
        Reply.text("Booked!"),
    )
    events = await collect(llm_client.send("book it for Ann"))
    assert one(events, "approval_requested")["tool_call_id"] == "b1"
    assert len(fake_openai.requests) == 1
    events = await collect(llm_client.decide("b1", True))
    assert names(events)[:3] == ["approval_resolved", "tool_call_started", "tool_call_completed"]
    assert one(events, "assistant_message")["text"] == "Booked!"
    fed = tool_messages(fake_openai.requests[-1].body)
    assert json.loads(fed[0]["content"])["status"] == "ok"


async def test_provider_failure_mid_stream(
    llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.script(Reply.cut_after("Half a sen"))
    events = await collect(llm_client.send("hello"))
    assert one(events, "error")["code"] == "llm_stream_cut"
    assert events[-1].data["status"] == "error"
    history = await llm_client.messages()
    assert history[-1]["role"] == "assistant" and history[-1]["text"] == "Half a sen"
    fake_openai.script(Reply.http_error(500, "boom"))
    events = await collect(llm_client.send("again"))
    assert one(events, "error")["code"] == "llm_http_error"
    fake_openai.script(Reply.text("Back."))
    events = await collect(llm_client.send("and now?"))
    assert one(events, "assistant_message")["text"] == "Back."


async def test_invalid_tool_arguments_are_reported_and_fed_back(
    llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("check_availability", "{not json", id="x1")),
        Reply.text("Sorry, let me try again."),
    )
    events = await collect(llm_client.send("table?"))
    assert one(events, "error")["code"] == "llm_bad_tool_arguments"
    assert one(events, "tool_call_completed")["status"] == "error"
    assert one(events, "turn_end")["status"] == "completed"


async def test_tool_round_cap(llm_app: RunningApp, fake_openai: FakeOpenAIServer) -> None:
    client = llm_app.client()
    await client.create_session("demo")
    rounds = llm_app.services.brain.max_tool_rounds
    fake_openai.script(
        *[Reply.tool_calls(ToolCallScript("show_menu", {}, id=f"m{i}")) for i in range(rounds)]
    )
    events = await collect(client.send("menu forever"))
    assert one(events, "error")["code"] == "tool_rounds_exceeded"
    assert events[-1].data["status"] == "error"
    await client.aclose()


async def turn_running(app: RunningApp, client: ParleyClient) -> None:
    """Returns once the client's session has a turn running (bounded by the caller)."""
    while client.session_id not in app.services.brain.active:
        await asyncio.sleep(0)


async def test_two_concurrent_messages_one_409(
    llm_app: RunningApp, llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    gate = asyncio.Event()
    fake_openai.script(Reply.of(Wait(gate)), Reply.text("done"))
    first = llm_client.send("first")
    other = llm_app.client()
    other.session = llm_client.session
    started = asyncio.create_task(collect(first))
    await asyncio.wait_for(turn_running(llm_app, llm_client), timeout=10)
    with pytest.raises(ApiFailure) as err:
        await collect(other.send("second"))
    assert (err.value.status, err.value.code) == (409, "session_busy")
    gate.set()
    await started
    texts = [m["text"] for m in await llm_client.messages() if m["role"] == "user"]
    assert texts == ["first"]
    await other.aclose()


async def test_disconnect_mid_stream_stores_partial_and_frees_lock(
    llm_app: RunningApp, llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    from parley.testing.fake_openai import Text

    gate = asyncio.Event()
    fake_openai.script(Reply.of(Text("Once upon "), Text("a time"), Wait(gate)))
    stream = llm_client.send("tell me a story")
    seen = ""
    async for ev in stream:
        if ev.event == "assistant_delta":
            seen += ev.data["text"]
            if seen == "Once upon a time":
                break
    await stream.aclose()  # type: ignore[attr-defined]
    turn = llm_app.services.brain.active.get(llm_client.session_id)
    assert turn is not None
    await turn.wait()
    owner = await llm_app.services.coordinator.lock_owner(f"turn:{llm_client.session_id}")
    assert owner is None
    last = (await llm_client.messages())[-1]
    assert (last["role"], last["text"], last["interrupted"]) == ("assistant", "Once upon a time", True)
    fake_openai.script(Reply.text("Where was I?"))
    events = await collect(llm_client.send("go on"))
    assert one(events, "assistant_message")["text"] == "Where was I?"
    sent = fake_openai.requests[-1].body["messages"]
    assert any(m["role"] == "system" and "interrupted" in m["content"] for m in sent)


async def test_dangling_tool_call_is_repaired(
    llm_app: RunningApp, llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    store = llm_app.services.store
    await store.add_message(
        llm_client.session_id, "assistant", "",
        blocks=[{"type": "tool_call", "id": "crash1", "name": "show_menu", "arguments": {}}],
    )
    fake_openai.script(Reply.text("Hello again."))
    events = await collect(llm_client.send("hi"))
    repaired = one(events, "tool_call_completed")
    assert (repaired["tool_call_id"], repaired["status"]) == ("crash1", "error")
    sent = fake_openai.requests[-1].body["messages"]
    roles = [m["role"] for m in sent]
    assert roles[-3:] == ["assistant", "tool", "user"]
    assert sent[-2]["tool_call_id"] == "crash1"


async def test_initial_turn_written_by_the_llm(
    make_app: AppFactory, fake_openai: FakeOpenAIServer, tmp_path: Any
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "host.yaml").write_text(
        "name: host\ngreeting: llm\nbrain: llm\ninstructions: You host {show}.\n"
    )
    async with make_app(agents_dir=agents, llm_base_url=fake_openai.base_url) as app:
        client = app.client()
        await client.create_session("host", template_vars={"show": "a quiz"})
        fake_openai.script(Reply.text("Welcome ", "to the quiz!"))
        events = await collect(client.initial_turn())
        assert one(events, "assistant_message")["text"] == "Welcome to the quiz!"
        body = fake_openai.requests[-1].body
        assert body["messages"][0] == {"role": "system", "content": "You host a quiz."}
        assert "tools" not in body or not body["tools"]
        with pytest.raises(ApiFailure) as err:
            await collect(client.initial_turn())
        assert err.value.code == "already_started"
        assert len(fake_openai.requests) == 1
        await client.aclose()


async def test_an_answer_in_words_decides_before_the_model_sees_it(
    llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    args = {"name": "Ann", "date": "next wednesday", "time": "19:00", "party_size": 2}
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("book_table", args, id="b1")),
        Reply.text("Booked!"),
    )
    await collect(llm_client.send("book it for Ann"))
    events = await collect(llm_client.send("sure, go ahead"))
    resolved = one(events, "approval_resolved")
    assert (resolved["status"], resolved["decided_by"]) == ("approved", "user")
    assert [e.data["status"] for e in events if e.event == "tool_call_completed"] == ["ok"]
    sent = fake_openai.requests[-1].body["messages"]
    assert json.loads(sent[-1]["content"])["status"] == "ok"  # the tool result is last
    assert "sure, go ahead" not in [m.get("content") for m in sent if m["role"] == "user"]
    history = await llm_client.messages()
    answer = [m for m in history if m["role"] == "user"][-1]
    assert answer["text"] == "sure, go ahead"  # kept in the transcript
    assert answer["blocks"][0]["type"] == "approval_answer"


async def test_a_new_request_still_denies_for_the_llm(
    llm_client: ParleyClient, fake_openai: FakeOpenAIServer
) -> None:
    args = {"name": "Ann", "date": "next wednesday", "time": "19:00", "party_size": 2}
    fake_openai.script(
        Reply.tool_calls(ToolCallScript("book_table", args, id="b1")),
        Reply.text("Okay, I haven't booked it. We open at noon."),
    )
    await collect(llm_client.send("book it for Ann"))
    events = await collect(llm_client.send("when do you open?"))
    resolved = one(events, "approval_resolved")
    assert (resolved["status"], resolved["decided_by"]) == ("denied", "user_message")
    sent = fake_openai.requests[-1].body["messages"]
    assert sent[-1] == {"role": "user", "content": "when do you open?"}
    assert json.loads(sent[-2]["content"])["status"] == "denied"


async def test_the_llm_is_told_today_in_the_venue_time_zone(
    make_app: AppFactory, fake_openai: FakeOpenAIServer
) -> None:
    """The demo's system prompt says "Today is {today}": filled from the injected clock
    in the venue's zone (23:30 UTC on Friday 4 Dec is already Saturday in Amsterdam)."""
    clock = FakeClock(wall=dt.datetime(2026, 12, 4, 23, 30, tzinfo=dt.UTC))
    fake_openai.script(Reply.text("Sure."))
    async with make_app(clock=clock, llm_base_url=fake_openai.base_url, llm_model="m") as app:
        client = app.client()
        await client.create_session("demo")
        await collect(client.send("a table tomorrow please"))
        await client.aclose()
    system = fake_openai.requests[-1].body["messages"][0]["content"]
    assert "Today is Saturday 5 December 2026." in system
    assert "{today}" not in system
