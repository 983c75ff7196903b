"""One live voice attachment per session, and every live channel hears every decision.

Real server, real ``websockets`` and HTTP clients (the protocol fixtures of
``test_voice_ws.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from parley.client import ApiFailure
from parley.config import BUILTIN_AGENTS_DIR
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_chat_api import collect, one
from tests.test_voice_ws import AGENTS, Voice, backend, channel_is, open_voice, url

__all__ = ["backend"]  # the one-store fixture of the voice protocol tests


@pytest.fixture
async def app(make_app: AppFactory, tmp_path: Path) -> AsyncIterator[RunningApp]:
    agents = tmp_path / "agents"
    agents.mkdir()
    for name, text in AGENTS.items():
        (agents / name).write_text(text)
    demo = (BUILTIN_AGENTS_DIR / "demo.yaml").read_text()
    booking = demo.replace("name: demo\n", "name: fakebook\n", 1)
    booking += "\nengines: {stt: fake, tts: fake, vad: fake_energy}\n"
    (agents / "fakebook.yaml").write_text(booking)
    async with make_app(agents_dir=agents) as running:
        yield running


async def test_the_newest_voice_connection_wins(app: RunningApp) -> None:
    client = app.client()
    session = await client.create_session("fakevoice")
    older, _ = await open_voice(app, **session)
    with pytest.raises(ApiFailure) as refused:
        await collect(client.send("hello"))
    assert (refused.value.status, refused.value.code) == (409, "wrong_channel")
    newer, ready = await open_voice(app, **session)
    assert ready["session_id"] == session["session_id"]
    replaced = await older.until("error")
    assert replaced["code"] == "attachment_replaced"
    assert await older.closed() == 1000
    assert "session_ended" not in older.types()  # the session goes on, on the newer socket
    # closing the older socket did not give the session back to chat
    assert (await client.get(""))["current_channel"] == "voice"
    with pytest.raises(ApiFailure) as still:
        await collect(client.send("hello"))
    assert still.value.code == "wrong_channel"
    await newer.send({"type": "text", "text": "hello"})
    await newer.until("turn_end")
    await newer.ws.close()
    await channel_is(client, "chat")
    events = await collect(client.send("hello"))
    assert one(events, "turn_end")["status"] == "completed"
    await client.aclose()


async def test_an_approval_decided_over_http_reaches_the_voice_socket(app: RunningApp) -> None:
    client = app.client()
    session = await client.create_session("fakebook")
    await collect(client.send("I'd like a table for 2 tomorrow at 7pm"))
    events = await collect(client.send("My name is Ann Lee"))
    request = one(events, "approval_requested")
    voice, _ = await open_voice(app, **session)
    decided = await collect(client.decide(request["tool_call_id"], True))
    http_types = [e.event for e in decided]
    assert http_types[0] == "approval_resolved" and http_types[-1] == "turn_end"
    resolved = await voice.until("approval_resolved")
    assert resolved == {
        "type": "approval_resolved",
        "tool_call_id": request["tool_call_id"],
        "status": "approved",
        "decided_by": "user",
    }
    completed = await voice.until("tool_call_completed", name="book_table")
    assert completed["status"] == "ok"
    await voice.until("turn_end")
    relayed = [e["type"] for e in voice.events[voice.events.index(resolved) :]]
    assert relayed == http_types  # the whole continuation, in order
    await voice.ws.close()
    await client.aclose()


async def test_a_start_for_an_unknown_session_and_a_wrong_token_look_the_same(
    app: RunningApp,
) -> None:
    client = app.client()
    session = await client.create_session("fakevoice")
    answers: list[Any] = []
    for sid, token in [(session["session_id"], "wrong"), ("no-such-session", "wrong")]:
        voice = Voice(await websockets.connect(url(app)))
        await voice.send({"type": "start", "session_id": sid, "session_token": token})
        assert await voice.closed() == 1008
        answers.append(voice.events)
    assert (
        answers[0]
        == answers[1]
        == [{"type": "error", "code": "session_not_found", "message": "no such session"}]
    )
    await client.aclose()
