"""The chat channel end to end: real server on 127.0.0.1, real HTTP, real SSE parsing.

Every test runs twice: SQLite + in-process coordination, PostgreSQL + Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from parley.client import ApiFailure, ParleyClient, SseEvent
from tests.plugins.apps import AppFactory, RunningApp


async def collect(stream: Any) -> list[SseEvent]:
    return [ev async for ev in stream]


def names(events: list[SseEvent]) -> list[str]:
    return [e.event for e in events]


def one(events: list[SseEvent], name: str) -> dict[str, Any]:
    found = [e.data for e in events if e.event == name]
    assert len(found) == 1, f"expected one {name} in {names(events)}"
    return found[0]


async def book_until_approval(client: ParleyClient) -> dict[str, Any]:
    """Drive the demo agent to the point where it asks to book; return the request."""
    await client.create_session("demo")
    events = await collect(client.send("I'd like a table for 2 next Wednesday at 7pm"))
    assert "check_availability" in [
        e.data["name"] for e in events if e.event == "tool_call_completed"
    ]
    events = await collect(client.send("My name is Ann Lee"))
    assert one(events, "turn_end")["status"] == "awaiting_approval"
    request = one(events, "approval_requested")
    assert request["name"] == "book_table"
    assert request["arguments"]["party_size"] == 2
    return request


async def tool_runs(client: ParleyClient, name: str) -> int:
    return sum(
        1
        for m in await client.messages()
        for b in m["blocks"]
        if b["type"] == "tool_result" and b["name"] == name and b["status"] == "ok"
    )


async def test_health_docs_and_agents(running: RunningApp) -> None:
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        docs = await http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        agents = (await http.get("/v1/agents")).json()
        assert {"name": "demo", "brain": "rules"}.items() <= agents[0].items() or any(
            a["name"] == "demo" for a in agents
        )


async def test_full_booking_flow_with_approval(client: ParleyClient) -> None:
    request = await book_until_approval(client)
    events = await collect(client.decide(request["tool_call_id"], True))
    assert names(events)[0] == "approval_resolved"
    assert one(events, "approval_resolved")["status"] == "approved"
    done = one(events, "tool_call_completed")
    assert done["name"] == "book_table" and done["status"] == "ok"
    confirmation = done["result"]["confirmation"]
    reply = one(events, "assistant_message")["text"]
    assert confirmation in reply
    assert one(events, "turn_end")["status"] == "completed"
    history = await client.messages()
    roles = [m["role"] for m in history]
    assert roles[0] == "assistant"  # the static greeting
    assert roles.count("user") == 2
    approval_blocks = [b for m in history for b in m["blocks"] if b["type"] == "approval"]
    assert approval_blocks == [
        {"type": "approval", "tool_call_id": request["tool_call_id"], "status": "approved",
         "decided_by": "user"}
    ]


async def test_denied_approval_does_not_run_the_tool(client: ParleyClient) -> None:
    request = await book_until_approval(client)
    events = await collect(client.decide(request["tool_call_id"], False))
    assert one(events, "approval_resolved")["status"] == "denied"
    assert one(events, "tool_call_completed")["status"] == "denied"
    assert one(events, "turn_end")["status"] == "completed"
    assert await tool_runs(client, "book_table") == 0


async def test_second_decision_gets_the_winning_status(client: ParleyClient) -> None:
    request = await book_until_approval(client)
    await collect(client.decide(request["tool_call_id"], True))
    events = await collect(client.decide(request["tool_call_id"], False))
    assert names(events) == ["approval_resolved", "turn_end"]
    assert events[0].data["status"] == "approved"
    assert await tool_runs(client, "book_table") == 1


async def test_concurrent_decisions_run_the_tool_once(running: RunningApp) -> None:
    first = running.client()
    request = await book_until_approval(first)
    clients = [running.client() for _ in range(6)]
    for c in clients:
        c.session = first.session
    results = await asyncio.gather(
        *(collect(c.decide(request["tool_call_id"], i % 2 == 0)) for i, c in enumerate(clients))
    )
    statuses = {one(r, "approval_resolved")["status"] for r in results}
    assert len(statuses) == 1, "everyone must see the same (winning) decision"
    winners = [r for r in results if "tool_call_completed" in names(r)]
    assert len(winners) == 1
    expected_runs = 1 if statuses == {"approved"} else 0
    assert await tool_runs(first, "book_table") == expected_runs
    for c in [first, *clients]:
        await c.aclose()


async def test_message_while_approval_pending_denies_it(client: ParleyClient) -> None:
    request = await book_until_approval(client)
    events = await collect(client.send("Actually, what's on the menu?"))
    resolved = one(events, "approval_resolved")
    assert resolved == {"type": "approval_resolved", "tool_call_id": request["tool_call_id"],
                        "status": "denied", "decided_by": "user_message"}
    assert one(events, "turn_end")["status"] == "completed"
    late = await collect(client.decide(request["tool_call_id"], True))
    assert late[0].data["status"] == "denied"
    assert await tool_runs(client, "book_table") == 0


async def test_unknown_approval_is_404(client: ParleyClient) -> None:
    await client.create_session("demo")
    with pytest.raises(ApiFailure) as err:
        await collect(client.decide("call_nope", True))
    assert (err.value.status, err.value.code) == (404, "approval_not_found")


async def test_menu_carousel_and_card_click(client: ParleyClient) -> None:
    await client.create_session("demo")
    events = await collect(client.send("What's on the menu?"))
    op = one(events, "ui_op")["op"]
    assert op["kind"] == "carousel" and len(op["items"]) >= 3
    item = op["items"][0]
    events = await collect(client.click(item["msg"], item["display"]))
    assert one(events, "turn_end")["status"] == "completed"
    history = await client.messages()
    clicked = [m for m in history if m["role"] == "user"][-1]
    assert clicked["blocks"][0]["type"] == "ui_action"
    assert clicked["text"] == item["msg"]


async def test_busy_session_answers_409(running: RunningApp, client: ParleyClient) -> None:
    await client.create_session("demo")
    coord = running.services.coordinator
    assert await coord.acquire_lock(f"turn:{client.session_id}", "someone-else", 60)
    with pytest.raises(ApiFailure) as err:
        await collect(client.send("hello"))
    assert (err.value.status, err.value.code) == (409, "session_busy")
    assert [m["role"] for m in await client.messages()] == ["assistant"]  # nothing stored
    await coord.release_lock(f"turn:{client.session_id}", "someone-else")
    events = await collect(client.send("hello"))
    assert one(events, "turn_end")["status"] == "completed"


async def test_end_session_then_410(client: ParleyClient) -> None:
    await client.create_session("demo")
    ended = await client.end()
    assert ended["status"] == "ended" and ended["end_reason"] == "USER_ENDED"
    assert (await client.end())["end_reason"] == "USER_ENDED"
    with pytest.raises(ApiFailure) as err:
        await collect(client.send("hello"))
    assert (err.value.status, err.value.code) == (410, "session_ended")
    state = await client.get("")
    assert state["status"] == "ended" and state["end_reason"] == "USER_ENDED"


async def test_initial_turn_rules(make_app: AppFactory, tmp_path: Any) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "opener.yaml").write_text(
        "name: opener\ngreeting: llm\nbrain: rules\n"
        "rules:\n  - intent: greet\n    keywords: [hello]\n    say: Hello!\n"
    )
    async with make_app(agents_dir=agents) as app:
        client = app.client()
        await client.create_session("opener")
        assert client.session is not None and client.session["greeting_mode"] == "llm"
        coord = app.services.coordinator
        key = f"turn:{client.session_id}"
        assert await coord.acquire_lock(key, "other", 60)
        with pytest.raises(ApiFailure) as busy:
            await collect(client.initial_turn())
        assert (busy.value.status, busy.value.code) == (409, "session_busy")
        await coord.release_lock(key, "other")
        events = await collect(client.initial_turn())
        greeting = one(events, "assistant_message")["text"]
        assert greeting
        with pytest.raises(ApiFailure) as again:
            await collect(client.initial_turn())
        assert (again.value.status, again.value.code) == (409, "already_started")
        assert [m["text"] for m in await client.messages()] == [greeting]
        await client.end()
        with pytest.raises(ApiFailure) as ended:
            await collect(client.initial_turn())
        assert (ended.value.status, ended.value.code) == (410, "session_ended")
        await client.aclose()


async def test_static_greeting_is_stored_and_initial_turn_refused(client: ParleyClient) -> None:
    session = await client.create_session("demo")
    assert session["greeting_mode"] == "static" and session["greeting"]
    assert [m["text"] for m in await client.messages()] == [session["greeting"]]
    with pytest.raises(ApiFailure) as err:
        await collect(client.initial_turn())
    assert err.value.code == "already_started"


async def test_tokens(running: RunningApp) -> None:
    a, b = running.client(), running.client()
    await a.create_session("demo")
    await b.create_session("demo")
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        url = f"/v1/sessions/{a.session_id}/messages"
        missing = await http.get(url)
        assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
        wrong = await http.get(
            url, headers={"Authorization": f"Bearer {b.session['session_token']}"}  # type: ignore[index]
        )
        assert wrong.status_code == 404 and wrong.json()["code"] == "session_not_found"
        assert a.session_id not in wrong.text
        unknown = await http.get(
            "/v1/sessions/nope/messages", headers={"Authorization": "Bearer x"}
        )
        # a wrong token and an unknown session answer exactly the same
        assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json())
        post = await http.post(url, json={"text": "hi"}, headers={"Authorization": "Bearer bad"})
        assert post.status_code == 404
    assert len(await a.messages()) == 1
    await a.aclose()
    await b.aclose()


async def test_unknown_agent_lists_agents(client: ParleyClient) -> None:
    with pytest.raises(ApiFailure) as err:
        await client.create_session("nobody")
    assert err.value.status == 404 and err.value.code == "agent_not_found"
    assert "demo" in err.value.body["agents"]


async def test_rate_limit(make_app: AppFactory) -> None:
    async with make_app(session_rate_limit=2) as app:
        async with httpx.AsyncClient(base_url=app.base_url) as http:
            codes = [(await http.post("/v1/sessions", json={})).status_code for _ in range(3)]
            assert codes == [201, 201, 429]
            last = await http.post("/v1/sessions", json={})
            assert last.json()["code"] == "rate_limited"
            assert int(last.headers["Retry-After"]) >= 1


async def test_bad_bodies_store_nothing(running: RunningApp, client: ParleyClient) -> None:
    await client.create_session("demo")
    auth = {"Authorization": f"Bearer {client.session['session_token']}"}  # type: ignore[index]
    url = f"/v1/sessions/{client.session_id}/messages"
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth) as http:
        bad_json = await http.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad_json.status_code == 400 and bad_json.json()["code"] == "malformed_json"
        empty = await http.post(url, json={"text": "  "})
        assert empty.status_code == 422 and empty.json()["code"] == "invalid_request"
        both = await http.post(url, json={"text": "a", "ui_action": {"msg": "b"}})
        assert both.status_code == 422
        extra = await http.post(url, json={"txt": "hello"})
        assert extra.status_code == 422 and "txt" in extra.json()["message"]
        huge = await http.post(url, json={"text": "x" * 300_000})
        assert huge.status_code == 413 and huge.json()["code"] == "body_too_large"
        async def chunks() -> Any:
            for _ in range(400):
                yield b"x" * 1024

        chunked = await http.post(url, content=chunks())
        assert chunked.status_code == 413
    assert len(await client.messages()) == 1


async def test_decision_while_another_turn_runs_is_recorded_and_settled_once(
    running: RunningApp, client: ParleyClient
) -> None:
    request = await book_until_approval(client)
    coord = running.services.coordinator
    key = f"turn:{client.session_id}"
    assert await coord.acquire_lock(key, "a-running-turn", 60)
    events = await collect(client.decide(request["tool_call_id"], True))
    assert names(events) == ["approval_resolved", "error", "turn_end"]
    assert events[0].data["status"] == "approved" and events[1].data["code"] == "session_busy"
    assert await tool_runs(client, "book_table") == 0
    await coord.release_lock(key, "a-running-turn")
    events = await collect(client.send("thanks"))
    assert one(events, "tool_call_completed")["name"] == "book_table"
    assert await tool_runs(client, "book_table") == 1
    again = await collect(client.decide(request["tool_call_id"], False))
    assert again[0].data["status"] == "approved"
    assert await tool_runs(client, "book_table") == 1
