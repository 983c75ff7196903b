"""Hostile but fair input at the HTTP edge: answered with a clear 4xx, never a 500.

Real server on 127.0.0.1, real HTTP; every test runs on SQLite + in-process coordination
and on PostgreSQL + Redis (PostgreSQL is the store that refuses U+0000).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from parley.client import ApiFailure, ParleyClient
from parley.testing.fake_openai import FakeOpenAIServer, Reply, ToolCallScript
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_chat_api import book_until_approval, collect, one

NUL = "\x00"


def auth(client: ParleyClient, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or client.session['session_token']}"}  # type: ignore[index]


def raw_json(text: str) -> dict[str, Any]:
    """A request whose body is exactly ``text`` (JSON escapes like ``\\ud800`` kept)."""
    return {"content": text.encode(), "headers": {"Content-Type": "application/json"}}


def assert_invalid(resp: httpx.Response, field: str) -> None:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] == "invalid_request"
    assert body["message"].startswith(field), body
    assert body["fields"][0]["field"] == field


# --- characters no store may be handed ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metadata": {"note": f"a{NUL}b"}}, "metadata"),
        ({"metadata": {f"k{NUL}": 1}}, "metadata"),
        ({"metadata": {"deep": [{"x": NUL}]}}, "metadata"),
        ({"template_vars": {"name": f"Ann{NUL}"}}, "template_vars"),
        ({"template_vars": {f"n{NUL}": "Ann"}}, "template_vars"),
        ({"agent": f"demo{NUL}"}, "agent"),
    ],
)
async def test_nul_at_session_creation_is_refused(
    running: RunningApp, body: dict[str, Any], field: str
) -> None:
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        resp = await http.post("/v1/sessions", json=body)
    assert_invalid(resp, field)
    assert "U+0000" in resp.json()["message"]


@pytest.mark.parametrize(
    "text",
    [
        '{"metadata": {"note": "a\\ud800b"}}',
        '{"metadata": {"\\udfff": 1}}',
        '{"template_vars": {"name": "\\udc00"}}',
    ],
)
async def test_lone_surrogates_at_session_creation_are_refused(
    running: RunningApp, text: str
) -> None:
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        resp = await http.post("/v1/sessions", **raw_json(text))
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "invalid_request"


async def test_nul_in_a_path_is_no_such_session(running: RunningApp, client: ParleyClient) -> None:
    await client.create_session("demo")
    sid = client.session_id
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth(client)) as http:
        for method, path in [
            ("GET", "/v1/sessions/%00"),
            ("GET", f"/v1/sessions/{sid}%00/messages"),
            ("POST", "/v1/sessions/a%00b/end"),
            ("POST", "/v1/sessions/%00/voice-turn"),
        ]:
            resp = await http.request(method, path)
            assert resp.status_code == 404, (path, resp.text)
            assert resp.json()["code"] == "session_not_found"
        resp = await http.post(f"/v1/sessions/{sid}/approvals/call%00", json={"approved": True})
        assert resp.status_code == 404 and resp.json()["code"] == "approval_not_found"
    assert len(await client.messages()) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": f"hello{NUL}there"}, "text"),
        ({"ui_action": {"msg": f"pick{NUL}"}}, "ui_action.msg"),
        ({"ui_action": {"msg": "pick", "display": NUL}}, "ui_action.display"),
    ],
)
async def test_nul_in_a_chat_message_is_refused_and_nothing_stored(
    running: RunningApp, client: ParleyClient, body: dict[str, Any], field: str
) -> None:
    await client.create_session("demo")
    url = f"/v1/sessions/{client.session_id}/messages"
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth(client)) as http:
        assert_invalid(await http.post(url, json=body), field)
        assert_invalid(await http.post(url, **raw_json('{"text": "hi \\udbff"}')), "text")
    assert len(await client.messages()) == 1
    events = await collect(client.send("hello"))  # the session is as good as before
    assert one(events, "turn_end")["status"] == "completed"


async def test_nul_in_an_approval_reason_is_refused_and_the_approval_stays_pending(
    running: RunningApp, client: ParleyClient
) -> None:
    request = await book_until_approval(client)
    url = f"/v1/sessions/{client.session_id}/approvals/{request['tool_call_id']}"
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth(client)) as http:
        resp = await http.post(url, json={"approved": False, "reason": f"no{NUL}"})
    assert_invalid(resp, "reason")
    state = await client.get("")
    assert [a["tool_call_id"] for a in state["pending_approvals"]] == [request["tool_call_id"]]


# --- malformed JSON and strict types -----------------------------------------------------


async def test_malformed_bodies_are_malformed_json(
    running: RunningApp, client: ParleyClient
) -> None:
    await client.create_session("demo")
    url = f"/v1/sessions/{client.session_id}/messages"
    deep = '{"text": "hi", "x": ' + "[" * 2000 + "]" * 2000 + "}"
    nested_65 = '{"metadata": {"a": ' + "[" * 63 + "]" * 63 + "}}"  # 65 levels
    bodies = {
        url: [
            b'{"text": "caf\xe9"}',  # Latin-1, not UTF-8
            b'{"text": "\xed\xa0\x80"}',  # an encoded surrogate is not UTF-8
            deep.encode(),
            b'{"text": NaN}',
            b'{"text": "x", "n": 1e999}',
            b'{"text": "x", "n": ' + b"9" * 5000 + b"}",
            b"\xef\xbb\xbf{}",  # a byte-order mark
        ],
        "/v1/sessions": [nested_65.encode(), b'{"metadata": {"x": Infinity}}'],
    }
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth(client)) as http:
        for path, raws in bodies.items():
            for raw in raws:
                resp = await http.post(
                    path, content=raw, headers={"Content-Type": "application/json"}
                )
                assert resp.status_code == 400, (raw[:40], resp.text)
                assert resp.json()["code"] == "malformed_json"
        ok = '{"metadata": {"a": ' + "[" * 62 + "]" * 62 + "}}"  # 64 levels in all
        resp = await http.post("/v1/sessions", **raw_json(ok))
        assert resp.status_code == 201, resp.text
    assert len(await client.messages()) == 1


@pytest.mark.parametrize("approved", ["yes", 1, 0, "true", None, [True]])
async def test_approved_must_be_a_json_boolean(
    running: RunningApp, client: ParleyClient, approved: Any
) -> None:
    request = await book_until_approval(client)
    url = f"/v1/sessions/{client.session_id}/approvals/{request['tool_call_id']}"
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth(client)) as http:
        assert_invalid(await http.post(url, json={"approved": approved}), "approved")
    state = await client.get("")
    assert len(state["pending_approvals"]) == 1
    assert await collect(client.decide(request["tool_call_id"], False))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": 5}, "agent"),
        ({"template_vars": {"n": None}}, "template_vars.n"),
        ({"template_vars": ["a"]}, "template_vars"),
        ({"metadata": "x"}, "metadata"),
    ],
)
async def test_session_bodies_have_strict_types(
    running: RunningApp, body: dict[str, Any], field: str
) -> None:
    async with httpx.AsyncClient(base_url=running.base_url) as http:
        resp = await http.post("/v1/sessions", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["fields"][0]["field"].startswith(field)


async def test_text_must_be_a_string(running: RunningApp, client: ParleyClient) -> None:
    await client.create_session("demo")
    url = f"/v1/sessions/{client.session_id}/messages"
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth(client)) as http:
        assert_invalid(await http.post(url, json={"text": 42}), "text")
        assert_invalid(await http.post(url, json={"ui_action": {"msg": True}}), "ui_action.msg")


async def test_an_ended_session_lists_no_pending_approvals(
    running: RunningApp, client: ParleyClient
) -> None:
    request = await book_until_approval(client)
    assert len((await client.get(""))["pending_approvals"]) == 1
    await client.end()
    state = await client.get("")
    assert state["status"] == "ended" and state["pending_approvals"] == []
    async with httpx.AsyncClient(base_url=running.base_url, headers=auth(client)) as http:
        url = f"/v1/sessions/{client.session_id}/approvals/{request['tool_call_id']}"
        resp = await http.post(url, json={"approved": True})
    assert resp.status_code == 410 and resp.json()["code"] == "session_ended"


# --- the operator key ----------------------------------------------------------------------

OPERATOR_KEY = "operator-key-for-tests-0123456789"


async def test_operator_key_reads_decides_and_ends_as_the_operator(make_app: AppFactory) -> None:
    async with make_app(operator_key=OPERATOR_KEY) as app:
        client = app.client()
        request = await book_until_approval(client)
        sid = client.session_id
        op = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        async with httpx.AsyncClient(base_url=app.base_url, headers=op) as http:
            state = (await http.get(f"/v1/sessions/{sid}")).json()
            assert state["pending_approvals"][0]["tool_call_id"] == request["tool_call_id"]
            assert (await http.get(f"/v1/sessions/{sid}/messages")).status_code == 200
            async with http.stream(
                "POST",
                f"/v1/sessions/{sid}/approvals/{request['tool_call_id']}",
                json={"approved": True},
            ) as resp:
                assert resp.status_code == 200
                text = (await resp.aread()).decode()
            assert '"decided_by": "operator"' in text
            blocks = [b for m in await client.messages() for b in m["blocks"]]
            approval = next(b for b in blocks if b["type"] == "approval")
            assert approval["decided_by"] == "operator"
            ended = (await http.post(f"/v1/sessions/{sid}/end")).json()
            assert ended["status"] == "ended" and ended["end_reason"] == "OPERATOR_ENDED"
        await client.aclose()


async def test_operator_key_cannot_speak_as_the_user(make_app: AppFactory) -> None:
    async with make_app(operator_key=OPERATOR_KEY) as app:
        client = app.client()
        await client.create_session("demo")
        sid = client.session_id
        op = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        async with httpx.AsyncClient(base_url=app.base_url, headers=op) as http:
            for path, kwargs in [
                ("/messages", {"json": {"text": "book everything"}}),
                ("/messages", {"json": {"ui_action": {"msg": "yes"}}}),
                ("/initial-turn", {}),
                ("/voice-turn", {"content": b"", "headers": {"Content-Type": "audio/wav"}}),
            ]:
                resp = await http.post(f"/v1/sessions/{sid}{path}", **kwargs)
                assert resp.status_code == 403, (path, resp.text)
                assert resp.json()["code"] == "operator_not_allowed"
        assert len(await client.messages()) == 1
        assert one(await collect(client.send("hello")), "turn_end")["status"] == "completed"
        await client.aclose()


async def test_a_user_ending_their_session_is_user_ended(client: ParleyClient) -> None:
    await client.create_session("demo")
    assert (await client.end())["end_reason"] == "USER_ENDED"
    with pytest.raises(ApiFailure) as err:
        await collect(client.send("hi"))
    assert err.value.status == 410 and err.value.code == "session_ended"


async def test_operator_key_cannot_attach_voice(make_app: AppFactory) -> None:
    async with make_app(operator_key=OPERATOR_KEY) as app:
        client = app.client()
        await client.create_session("demo")
        ws_url = app.base_url.replace("http", "ws", 1) + "/v1/voice"
        start = {"type": "start", "session_id": client.session_id, "session_token": OPERATOR_KEY}
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps(start))
            error = json.loads(await asyncio.wait_for(ws.recv(), 15))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 15)
        assert (error["type"], error["code"]) == ("error", "operator_not_allowed")
        assert ws.close_code == 1008
        assert (await client.get(""))["current_channel"] == "chat"
        await client.aclose()


# --- what an LLM sends is stored, whatever it sends ----------------------------------------


async def test_an_llm_reply_with_nul_is_stored_without_it(
    make_app: AppFactory, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.script(
        Reply.tool_calls(
            ToolCallScript(
                "check_availability",
                {"date": "fri\x00day", "time": "19:00", "party_size": 2},
                id="c\x001",
            ),
            text=("Let me\x00 ", "check. "),
        ),
        Reply.text("Friday \x00at seven ", "is \ud800free."),
    )
    async with make_app(llm_base_url=fake_openai.base_url, llm_model="fake-model") as app:
        client = app.client()
        await client.create_session("demo")
        events = await collect(client.send("table for two on friday at 7?"))
        assert one(events, "turn_end")["status"] == "completed", events
        call = one(events, "tool_call_started")
        assert call["tool_call_id"] == "c1" and call["arguments"]["date"] == "friday"
        history = await client.messages()
        assert [m["text"] for m in history if m["role"] == "assistant"][-1] == (
            "Friday at seven is free."
        )
        await client.aclose()
