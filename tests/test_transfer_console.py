"""Warm transfer, browser caller → web console: two real WebSocket clients (caller,
operator) and the operator API over HTTP, on a real server.

The agent uses the fake engines and the rules brain; "human" calls
``transfer_to_human``. Tones: 440 Hz from the caller, 1000 Hz from the human; each
must arrive on the other side at its frequency and level.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from parley.client import ParleyClient
from parley.handoff.state import Timeouts
from parley.testing import FakeClock
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_voice_ws import Voice

KEY = "op-secret"
AGENT = """
name: desk
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {stt: fake, tts: fake, vad: fake_energy}
tools:
  - name: transfer_to_human
rules:
  - intent: human
    keywords: [human]
    tool: transfer_to_human
  - intent: greet
    keywords: [hello]
    say: "Hello you."
"""


@pytest.fixture
async def app(make_app: AppFactory, tmp_path: Path) -> AsyncIterator[RunningApp]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "desk.yaml").write_text(AGENT)
    async with make_app(agents_dir=agents, operator_key=KEY) as running:
        yield running


def tone(freq: float, seconds: float, rate: int = 16000, amp: float = 0.3) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2").tobytes()


def analyse(pcm: bytes, rate: int = 16000) -> tuple[float, float]:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    x = x[len(x) // 4 :]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x)), float(np.sqrt(np.mean(x**2)))


def ws_url(app: RunningApp) -> str:
    return app.base_url.replace("http", "ws", 1) + "/v1/voice"


async def waiting(app: RunningApp) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=app.base_url) as http:
        resp = await http.get("/v1/operator/transfers", headers={"Authorization": f"Bearer {KEY}"})
        assert resp.status_code == 200
        return list(resp.json()["transfers"])


async def caller_on_hold(app: RunningApp, ws: Any) -> tuple[Voice, str, str]:
    """A voice caller who asked for a person: (client, transfer id, session id)."""
    caller = Voice(ws)
    await caller.send({"type": "start", "agent": "desk", "sample_rate": 16000})
    session_id = str((await caller.until("ready"))["session_id"])
    await caller.send({"type": "text", "text": "can I talk to a human"})
    event = await caller.until("transfer", status="dialing")
    return caller, str(event["transfer_id"]), session_id


async def next_published(
    events: AsyncIterator[dict[str, Any]], kind: str, **fields: Any
) -> dict[str, Any]:
    """The next message of this kind on a session's channel (what every worker hears)."""
    while True:
        message = await asyncio.wait_for(anext(events), 15.0)
        inner = message.get("event") if message.get("type") == "relay" else message
        if isinstance(inner, dict) and inner.get("type") == kind:
            if all(inner.get(k) == v for k, v in fields.items()):
                return inner


async def test_operator_api_refuses_without_the_key(app: RunningApp) -> None:
    async with httpx.AsyncClient(base_url=app.base_url) as http:
        assert (await http.get("/v1/operator/transfers")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        resp = await http.get("/v1/operator/transfers", headers=wrong)
        assert resp.status_code == 403 and "transfers" not in resp.json()
        resp = await http.post("/v1/operator/transfers/tr_x/decline", headers=wrong)
        assert resp.status_code == 403


async def test_voice_caller_to_console_briefing_audio_both_ways_and_hang_up(
    app: RunningApp,
) -> None:
    async with websockets.connect(ws_url(app)) as cws, websockets.connect(ws_url(app)) as ows:
        caller, transfer_id, session_id = await caller_on_hold(app, cws)
        listed = await waiting(app)
        assert [t["transfer_id"] for t in listed] == [transfer_id]
        assert listed[0]["status"] == "dialing" and listed[0]["caller_channel"] == "voice"
        assert "human" in listed[0]["briefing"] and listed[0]["reason"]

        human = Voice(ows)
        start = {"type": "start", "transfer_id": transfer_id, "operator_key": KEY}
        await human.send({**start, "sample_rate": 16000})
        ready = await human.until("ready")
        assert ready["caller_channel"] == "voice"
        briefing = await human.until("briefing")
        assert briefing["text"].startswith("Reason for the transfer")
        await caller.until("transfer", status="briefing")

        # A second operator: the first accept won.
        async with websockets.connect(ws_url(app)) as late:
            other = Voice(late)
            await other.send({**start, "sample_rate": 16000})
            assert (await other.until("error"))["code"] in ("transfer_taken", "transfer_not_found")

        caller.audio.clear()
        up, down = tone(440, 1.0), tone(1000, 1.0)
        for i in range(0, len(up), 640):
            await caller.send(up[i : i + 640])
            await human.send(down[i : i + 640])
        await caller.until("transfer", status="joined")
        await human.until("transfer", status="joined")
        await human.send({"type": "text", "text": "Hi, this is Sam from the team."})
        said = await caller.until("human_message")
        assert said["text"] == "Hi, this is Sam from the team."
        await caller.send({"type": "text", "text": "thanks Sam"})
        assert (await human.until("caller_message"))["text"] == "thanks Sam"

        f_human, level_human = analyse(await human.heard(16000))
        f_caller, level_caller = analyse(await caller.heard(16000))
        assert abs(f_human - 440) < 10 and abs(f_caller - 1000) < 10
        expected = 0.3 / np.sqrt(2)
        assert abs(level_human - expected) < 0.05 and abs(level_caller - expected) < 0.05
        # The AI is silent after joined: nothing of the assistant reached the caller.
        after = caller.events[caller.types().index("transfer") :]
        joined_at = next(i for i, e in enumerate(after) if e.get("status") == "joined")
        assert not [e for e in after[joined_at:] if e["type"].startswith("assistant")]
        assert not [e for e in after[joined_at:] if e["type"].startswith("transcript")]

        await ows.close()  # the human hangs up
        await caller.until("transfer", status="ended")
        back = await caller.until("assistant_text", status="start")
        assert back is not None

    session_id = listed[0]["session_id"]
    messages = await app.services.store.list_messages(session_id)
    roles = [(m.role, m.text) for m in messages]
    assert ("human_agent", "Hi, this is Sam from the team.") in roles
    assert ("user", "thanks Sam") in roles
    assert roles[-1][0] == "assistant" and "left the conversation" in roles[-1][1]
    assert await waiting(app) == []


async def test_caller_hang_up_ends_the_bridge(app: RunningApp) -> None:
    async with websockets.connect(ws_url(app)) as cws, websockets.connect(ws_url(app)) as ows:
        caller, transfer_id, _session_id = await caller_on_hold(app, cws)
        human = Voice(ows)
        start = {"type": "start", "transfer_id": transfer_id, "operator_key": KEY}
        await human.send(start)
        await human.until("briefing")
        await caller.until("transfer", status="briefing")
        chunk = tone(300, 0.1)
        await caller.send(chunk)
        await human.send(chunk)
        await human.until("transfer", status="joined")
        await cws.close()
        assert (await human.until("transfer"))["status"] == "ended"
        await human.closed()
    transfer = await app.services.transfers.board.get(transfer_id)
    assert transfer is not None and transfer.status.value == "ended"


async def test_caller_leaving_while_waiting_cancels(app: RunningApp) -> None:
    async with websockets.connect(ws_url(app)) as cws:
        _caller, transfer_id, session_id = await caller_on_hold(app, cws)
        channel = await app.services.lifecycle.subscribe(session_id)
    try:
        final = await next_published(aiter(channel), "transfer", status="cancelled")
    finally:
        await channel.close()
    assert final["transfer_id"] == transfer_id
    transfer = await app.services.transfers.board.get(transfer_id)
    assert transfer is not None and transfer.status.value == "cancelled"
    assert await waiting(app) == []


async def chat_transfer(app: RunningApp) -> tuple[ParleyClient, str]:
    client = app.client()
    await client.create_session("desk")
    events = [e async for e in client.send("I want a human")]
    transfer = [e.data for e in events if e.event == "transfer"]
    assert transfer and transfer[0]["status"] == "requested"
    return client, str(transfer[0]["transfer_id"])


async def test_decline_gives_a_chat_caller_back_to_the_ai(app: RunningApp) -> None:
    client, transfer_id = await chat_transfer(app)
    assert [t["caller_channel"] for t in await waiting(app)] == ["chat"]
    async with httpx.AsyncClient(base_url=app.base_url) as http:
        headers = {"Authorization": f"Bearer {KEY}"}
        url = f"/v1/operator/transfers/{transfer_id}/decline"
        resp = await http.post(url, headers=headers)
        assert resp.status_code == 200
        assert resp.json()["status"] == "failed" and resp.json()["reason"] == "declined"
        assert (await http.post(url, headers=headers)).status_code in (404, 409)
    messages = await client.messages()
    assert "nobody from the team" in messages[-1]["text"]
    # The AI answers again.
    events = [e async for e in client.send("hello")]
    assert any(e.event == "assistant_message" for e in events)
    await client.aclose()


async def test_timeout_gives_the_caller_back(app: RunningApp) -> None:
    client, transfer_id = await chat_transfer(app)
    desk = app.services.transfers
    desk.board.timeouts = Timeouts(ringing_s=0.0)
    changed = await desk.sweep()
    assert [(t.id, t.status.value, t.failure) for t in changed] == [
        (transfer_id, "failed", "timeout")
    ]
    messages = await client.messages()
    assert "nobody from the team" in messages[-1]["text"]
    await client.aclose()


async def test_a_chat_caller_and_the_console_talk_in_text(app: RunningApp) -> None:
    client, transfer_id = await chat_transfer(app)
    channel = await app.services.lifecycle.subscribe(client.session_id)
    async with websockets.connect(ws_url(app)) as ows:
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": transfer_id, "operator_key": KEY})
        await human.until("transfer", status="joined")
        events = [e async for e in client.send("are you a person?")]
        assert [e.event for e in events] == ["transfer", "turn_end"]
        assert (await human.until("caller_message"))["text"] == "are you a person?"
        await human.send({"type": "text", "text": "Yes, I'm Sam."})
        said = await next_published(aiter(channel), "human_message")
        assert said["text"] == "Yes, I'm Sam."
    try:  # the human hung up: the AI is back and says so
        back = await next_published(aiter(channel), "assistant_message")
    finally:
        await channel.close()
    assert "left the conversation" in back["text"]
    messages = await client.messages()
    roles = [m["role"] for m in messages]
    assert "human_agent" in roles and "left the conversation" in messages[-1]["text"]
    await client.aclose()


async def test_wrong_operator_key_cannot_join(app: RunningApp) -> None:
    async with websockets.connect(ws_url(app)) as ows:
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": "tr_x", "operator_key": "nope"})
        assert (await human.until("error"))["code"] == "forbidden"
        assert await human.closed() == 1008


async def test_decline_gives_a_voice_caller_back_to_the_ai(app: RunningApp) -> None:
    async with websockets.connect(ws_url(app)) as cws:
        caller, transfer_id, session_id = await caller_on_hold(app, cws)
        async with httpx.AsyncClient(base_url=app.base_url) as http:
            url = f"/v1/operator/transfers/{transfer_id}/decline"
            resp = await http.post(url, headers={"Authorization": f"Bearer {KEY}"})
            assert resp.status_code == 200
        await caller.until("transfer", status="failed", reason="declined")
        await caller.until("assistant_text", status="start")  # it says so, out loud
        await caller.until("done")
        await caller.send({"type": "text", "text": "hello"})  # and listens again
        answer = await caller.until("assistant_message")
        assert answer["text"] == "Hello you."
    messages = await app.services.store.list_messages(session_id)
    back = [m for m in messages if "nobody from the team" in m.text]
    assert [m.role for m in back] == ["assistant"]  # stored once


async def test_the_holding_worker_renews_the_lease_and_a_lost_one_expires(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    if backend.get("redis_url"):
        pytest.skip("Redis TTLs run on real time; the fake clock drives the local coordinator")
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "desk.yaml").write_text(AGENT)
    clock = FakeClock()
    async with make_app(clock=clock, agents_dir=agents, operator_key=KEY) as app:
        client, transfer_id = await chat_transfer(app)
        desk = app.services.transfers
        lease = desk.board.lease_s
        for _ in range(int(lease) + 5):  # longer than one lease, renewed every second
            clock.advance(1.0)
            await desk.renew()
        transfer = await desk.board.get(transfer_id)
        assert transfer is not None and transfer.status.value == "dialing"
        desk.held.clear()  # as if the worker holding it died: nobody renews
        clock.advance(lease + 1)
        assert await desk.board.get(transfer_id) is None
        assert await desk.live_for(client.session_id) is None  # chat reaches the AI again
        await client.aclose()


async def test_a_lost_transfer_the_console_listing_finds_first_still_gives_the_caller_back(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    """The listing and the sweep both find lost transfers; only one worker announces
    each, and whichever does also hands the caller back to the AI."""
    if backend.get("redis_url"):
        pytest.skip("Redis TTLs run on real time; the fake clock drives the local coordinator")
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "desk.yaml").write_text(AGENT)
    clock = FakeClock()
    async with make_app(clock=clock, agents_dir=agents, operator_key=KEY) as app:
        client, transfer_id = await chat_transfer(app)
        desk = app.services.transfers
        desk.held.clear()  # as if the worker holding it died: nobody renews
        clock.advance(desk.board.lease_s + 1)
        assert await desk.board.get(transfer_id) is None
        assert await desk.listing() == []  # it announces the loss, before any sweep
        assert await desk.sweep() == []  # announced once
        messages = await client.messages()
        assert "nobody from the team" in messages[-1]["text"]
        assert await desk.live_for(client.session_id) is None
        await client.aclose()


async def test_the_human_leg_refuses_bad_starts_and_survives_bad_frames(app: RunningApp) -> None:
    async with websockets.connect(ws_url(app)) as ows:
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": "tr_nothing"})
        assert (await human.until("error"))["code"] == "unauthorized"
    async with websockets.connect(ws_url(app)) as ows:
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": "tr_nothing", "operator_key": KEY})
        assert (await human.until("error"))["code"] == "transfer_not_found"
        assert await human.closed() == 1008
    client, transfer_id = await chat_transfer(app)
    async with websockets.connect(ws_url(app)) as ows:
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": transfer_id, "operator_key": KEY})
        await human.until("transfer", status="joined")
        for bad in ("not json", '{"type": "text", "text": "  "}', '{"type": "dance"}'):
            await human.send(bad)
            assert (await human.until("error"))["code"] == "bad_message"
        await human.send({"type": "ping"})
        await human.until("pong")
        await human.send({"type": "end"})
        assert (await human.until("transfer"))["status"] == "ended"
    assert [m["role"] for m in await client.messages()].count("human_agent") == 0
    await client.aclose()
