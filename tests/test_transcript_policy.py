"""``transcripts_to_client: false``: no words reach the client, all are stored.

The pure rule (``channels/transcript_policy.py``), then a real voice WebSocket, the chat
SSE stream and the session event stream against a running server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from parley.channels.transcript_policy import client_wire, hide_words
from parley.client import ParleyClient
from parley.events import AssistantDelta, AssistantMessage
from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import sqlite_url
from tests.test_resume_workers import until_quiet
from tests.test_voice_ws import open_voice

HEARD = "I would like to book a table for two tonight"  # the fake STT's transcript
AGENT = """
name: {name}
brain: rules
greeting: "Welcome to the interview."
fallback: "Pardon?"
engines: {{stt: fake, tts: fake, vad: fake_energy}}
rules:
  - intent: reserve
    keywords: [table]
    say: "Tell me about your last project."
transcripts_to_client: {shown}
"""
OPERATOR = "operator-key-for-tests"
WORDS = (HEARD, "Welcome to the interview.", "Tell me about your last project.")


def test_the_rule_drops_or_blanks_every_word_and_keeps_the_rest() -> None:
    hidden = [
        {"type": "transcript_partial", "text": "I would"},
        {"type": "transcript_final", "text": HEARD},
        {"type": "assistant_delta", "text": "Tell me"},
        {"type": "assistant_text", "status": "chunk", "text": "Tell me"},
    ]
    for event in hidden:
        assert client_wire(event, to_client=False) is None
        assert client_wire(event, to_client=True) == event
    start = {"type": "assistant_text", "status": "start", "text": ""}
    assert client_wire(start, to_client=False) == start
    message = {"type": "assistant_message", "message_id": "m1", "text": "Hi", "interrupted": True}
    assert client_wire(message, to_client=False) == {**message, "text": ""}
    done = {"type": "done", "latency_ms": {"stt_final": 10.0}}
    assert client_wire(done, to_client=False) == done
    answer = {"transcript": HEARD, "text": "Hi", "turn": True, "events": [*hidden, done]}
    assert hide_words(answer) == {"transcript": "", "text": "", "turn": True, "events": [done]}


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


@pytest.fixture
async def app(make_app: AppFactory, tmp_path: Path) -> AsyncIterator[RunningApp]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "interview.yaml").write_text(AGENT.format(name="interview", shown="false"))
    (agents / "open.yaml").write_text(AGENT.format(name="open", shown="true"))
    async with make_app(agents_dir=agents, operator_key=OPERATOR) as running:
        yield running


def words_in(events: list[dict[str, Any]]) -> list[str]:
    text = " ".join(str(e) for e in events)
    return [w for w in WORDS if w in text]


async def stored(app: RunningApp, session_id: str) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in await app.services.store.list_messages(session_id)]


@pytest.mark.parametrize(("agent", "shown"), [("interview", False), ("open", True)])
async def test_voice_sends_no_words_yet_stores_them(
    app: RunningApp, agent: str, shown: bool
) -> None:
    voice, ready = await open_voice(app, agent=agent)
    await voice.until("done")  # the greeting
    await until_quiet(voice)  # its playout is over: the speech is a turn, not a backchannel
    await voice.speak()
    await voice.until("done")
    assert voice.audio  # the agent still speaks
    kinds = voice.types()
    assert ("transcript_final" in kinds) is shown
    assert "assistant_message" in kinds and "assistant_text" in kinds
    assert words_in(voice.events) == ([HEARD, WORDS[2]] if shown else [])
    await voice.ws.close()
    assert await stored(app, ready["session_id"]) == [
        ("assistant", "Welcome to the interview."),
        ("user", HEARD),
        ("assistant", "Tell me about your last project."),
    ]


async def test_chat_and_the_session_stream_send_no_words_yet_store_them(
    app: RunningApp,
) -> None:
    client = ParleyClient(app.base_url)
    session = await client.create_session("interview")
    assert session["greeting"] is None
    headers = {"Authorization": f"Bearer {session['session_token']}"}
    url = f"{app.base_url}/v1/sessions/{session['session_id']}/events"
    seen: list[str] = []
    async with (
        httpx.AsyncClient(timeout=15) as http,
        http.stream("GET", url, headers=headers) as sse,
    ):
        lines = sse.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 15) == ": subscribed"
        events = [(e.event, e.data) async for e in client.send("a table please")]
        # what another channel relays (a transfer's AI message, a decision) reaches it too
        lifecycle = app.services.lifecycle
        await lifecycle.relay(session["session_id"], AssistantDelta("Tell me about"))
        await lifecycle.relay(session["session_id"], AssistantMessage("m9", WORDS[2]))
        await client.end()
        async for line in lines:
            seen.append(line)
            if line == "event: session_ended":
                break
    kinds = [kind for kind, _ in events]
    assert "assistant_message" in kinds and "assistant_delta" not in kinds
    assert words_in([data for _, data in events]) == []
    relayed = [line for line in seen if line.startswith("data:") and "relay" in line]
    assert len(relayed) == 1 and '"message_id": "m9"' in relayed[0]
    assert not any("Tell me about" in line for line in seen)
    assert not [w for w in WORDS if any(w in line for line in seen)]
    expected = [
        ("assistant", "Welcome to the interview."),
        ("user", "a table please"),
        ("assistant", "Tell me about your last project."),
    ]
    assert await stored(app, session["session_id"]) == expected
    # the history and the transcript: not for the client, yes for the operator key
    assert [m["text"] for m in await client.messages()] == ["", "", ""]
    base = f"{app.base_url}/v1/sessions/{session['session_id']}"
    async with httpx.AsyncClient(timeout=15) as http:
        refused = await http.get(f"{base}/transcript", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["code"] == "transcript_hidden"
        operator = {"Authorization": f"Bearer {OPERATOR}"}
        read = await http.get(f"{base}/messages", headers=operator)
        assert [(m["role"], m["text"]) for m in read.json()] == expected
        transcript = await http.get(f"{base}/transcript", headers=operator)
        assert [(e["role"], e["text"]) for e in transcript.json()["entries"]] == expected
    await client.aclose()
