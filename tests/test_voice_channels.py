"""One session across channels, over a real server on both backends (SQLite with
in-process locks, PostgreSQL with Redis locks): chat is refused while voice holds the
session, a chat turn holding the turn lock delays a voice turn without losing it."""

from __future__ import annotations

import pytest

from parley.client import ApiFailure
from tests.plugins.apps import RunningApp
from tests.test_voice_ws import app, channel_is, open_voice

__all__ = ["app"]  # the fixture, shared with test_voice_ws


async def test_chat_is_refused_while_voice_holds_the_session(app: RunningApp) -> None:
    client = app.client()
    session = await client.create_session("fakevoice")
    voice, _ = await open_voice(app, **session)
    await voice.send({"type": "text", "text": "hello"})
    await voice.until("done")
    with pytest.raises(ApiFailure) as refused:
        async for _ in client.send("a table"):
            pass
    assert (refused.value.status, refused.value.code) == (409, "wrong_channel")
    await voice.ws.close()
    await channel_is(client, "chat")
    kinds = [ev.event async for ev in client.send("a table")]
    assert kinds[-1] == "turn_end"
    history = [(m["role"], m["text"], m["channel"]) for m in await client.messages()]
    assert history == [
        ("assistant", "Hi.", "chat"),
        ("user", "hello", "voice"),
        ("assistant", "Hello you.", "voice"),
        ("user", "a table", "chat"),
        ("assistant", "Sure thing.", "chat"),
    ]
    await client.aclose()


async def test_voice_turn_waits_while_another_writer_holds_the_lock(app: RunningApp) -> None:
    client = app.client()
    session = await client.create_session("fakevoice")
    voice, _ = await open_voice(app, **session)
    await voice.until("done")  # the greeting
    lock = f"turn:{session['session_id']}"
    coordinator = app.services.coordinator
    assert await coordinator.acquire_lock(lock, "a-chat-turn", 30.0)
    await voice.send({"type": "text", "text": "a table please"})
    busy = await voice.until("error")
    assert busy["code"] == "session_busy"
    assert await coordinator.release_lock(lock, "a-chat-turn")
    await voice.until("done")
    assert [e["code"] for e in voice.events if e["type"] == "error"] == ["session_busy"]
    await voice.ws.close()
    texts = [m["text"] for m in await client.messages()]
    assert texts == ["Hi.", "a table please", "Sure thing."]
    await client.aclose()
