"""Warm transfer across workers (issue 11): the caller on worker A, the human's leg
(the console's voice socket, or the dialled person's media stream) on worker B, two
app instances on one PostgreSQL and one Redis. Each direction's audio is relayed
through Redis pub/sub; tones from each side must arrive on the other at their
frequency and level, nothing of the AI after ``joined``, bridged speech stored once,
either side hanging up ends the bridge, and a lost worker B ends it too. A chat
caller's text crosses workers as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets

from parley.channels import bridge_relay
from parley.engines.fake import TRANSCRIPT
from parley.testing.fake_twilio import FakeTwilio
from parley.testing.phone_peer import PhonePeer
from tests import test_transfer_phone as phone
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_phone_calls import eventually
from tests.test_transfer_console import (
    AGENT,
    KEY,
    analyse,
    caller_on_hold,
    chat_transfer,
    next_published,
    tone,
    ws_url,
)
from tests.test_voice_ws import Voice


@asynccontextmanager
async def two_workers(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> AsyncIterator[tuple[RunningApp, RunningApp]]:
    if not backend.get("redis_url"):
        pytest.skip("two workers share state through Redis")
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "desk.yaml").write_text(AGENT)
    async with (
        make_app(agents_dir=agents, operator_key=KEY) as a,
        make_app(agents_dir=agents, operator_key=KEY) as b,
    ):
        yield a, b


async def bridged(caller: Voice, human: Voice) -> None:
    """Tones both ways until both sides hear ``joined``; then check what each heard."""
    caller.audio.clear()
    up, down = tone(440, 1.0), tone(1000, 1.0)
    for i in range(0, len(up), 640):
        await caller.send(up[i : i + 640])
        await human.send(down[i : i + 640])
    await caller.until("transfer", status="joined")
    await human.until("transfer", status="joined")
    # ``joined`` (a status) may overtake the relayed audio: wait for half of each tone
    f_human, level_human = analyse(await human.heard(16000))
    f_caller, level_caller = analyse(await caller.heard(16000))
    assert abs(f_human - 440) < 10 and abs(f_caller - 1000) < 10
    expected = 0.3 / np.sqrt(2)
    assert abs(level_human - expected) < 0.05 and abs(level_caller - expected) < 0.05


async def test_voice_caller_on_a_and_console_on_b_hear_each_other_and_the_human_hangs_up(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with (
        two_workers(make_app, tmp_path, backend) as (a, b),
        websockets.connect(ws_url(a)) as cws,
        websockets.connect(ws_url(b)) as ows,
    ):
        caller, transfer_id, session_id = await caller_on_hold(a, cws)
        human = Voice(ows)
        start = {"type": "start", "transfer_id": transfer_id, "operator_key": KEY}
        await human.send({**start, "sample_rate": 16000})
        assert (await human.until("ready"))["caller_channel"] == "voice"
        await human.until("briefing")
        await caller.until("transfer", status="briefing")
        await bridged(caller, human)

        await human.send({"type": "text", "text": "Hi, this is Sam."})
        assert (await caller.until("human_message"))["text"] == "Hi, this is Sam."
        await caller.send({"type": "text", "text": "thanks Sam"})
        assert (await human.until("caller_message"))["text"] == "thanks Sam"
        after = caller.events[caller.types().index("transfer") :]
        joined_at = next(i for i, e in enumerate(after) if e.get("status") == "joined")
        assert not [e for e in after[joined_at:] if e["type"].startswith("assistant")]
        assert not [e for e in after[joined_at:] if e["type"].startswith("transcript")]

        await ows.close()  # the human on B hangs up
        await caller.until("transfer", status="ended")
        assert await caller.until("assistant_text", status="start") is not None

        messages = await a.services.store.list_messages(session_id)
        roles = [(m.role, m.text) for m in messages]
        assert roles.count(("human_agent", "Hi, this is Sam.")) == 1
        assert roles.count(("user", "thanks Sam")) == 1
        assert roles[-1][0] == "assistant" and "left the conversation" in roles[-1][1]
        assert not a.services.transfers.relays and not b.services.transfers.relays


async def test_the_caller_on_a_hanging_up_ends_the_bridge_on_b(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with (
        two_workers(make_app, tmp_path, backend) as (a, b),
        websockets.connect(ws_url(a)) as cws,
        websockets.connect(ws_url(b)) as ows,
    ):
        caller, transfer_id, _session_id = await caller_on_hold(a, cws)
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": transfer_id, "operator_key": KEY})
        await human.until("briefing")
        await bridged(caller, human)
        await cws.close()
        assert (await human.until("transfer"))["status"] == "ended"
        await human.closed()
        transfer = await b.services.transfers.board.get(transfer_id)
        assert transfer is not None and transfer.status.value == "ended"
        assert not a.services.transfers.relays  # A let go of the relay


@asynccontextmanager
async def phone_workers(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> AsyncIterator[tuple[RunningApp, RunningApp, FakeTwilio]]:
    """Two workers that take Twilio calls (agents ``line``, dialling a number, and
    ``desk``, to the console) and the local fake Twilio REST API."""
    if not backend.get("redis_url"):
        pytest.skip("two workers share state through Redis")
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "line.yaml").write_text(phone.AGENT)
    (agents / "desk.yaml").write_text(phone.CONSOLE_AGENT)
    async with FakeTwilio(phone.ACCOUNT, phone.TOKEN) as twilio:
        settings = {
            "agents_dir": agents,
            "public_url": phone.PUBLIC,
            "operator_key": KEY,
            "twilio_account_sid": phone.ACCOUNT,
            "twilio_auth_token": phone.TOKEN,
            "twilio_from": "+15559990000",
            "twilio_api_base": twilio.base_url,
        }
        async with make_app(**settings) as a, make_app(**settings) as b:
            yield a, b, twilio


async def test_a_phone_caller_on_a_and_the_dialled_person_on_b_hear_each_other(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with phone_workers(make_app, tmp_path, backend) as (a, b, twilio):
        twilio.tunnel = (phone.PUBLIC, a.base_url)  # the caller's call reaches A
        async with phone.phone_caller(a, twilio) as (caller, session_id, events):
            transfer_id, human_sid = await phone.ask_for_a_person(twilio, caller, events)
            twilio.tunnel = (phone.PUBLIC, b.base_url)  # the person's call reaches B
            url, params = phone.stream_of(b, await twilio.answer(human_sid))
            assert params["transfer_id"] == transfer_id
            async with PhonePeer.dial(url, parameters=params, call_id=human_sid) as human:
                await next_published(aiter(events), "transfer", status="briefing")
                await human.wait_for(lambda p: len(p.received) > 5)  # the briefing
                await human.press("1")
                await human.wait_for(lambda p: p.clears)
                cleared_at = next(
                    i for i, m in enumerate(human.received) if m.get("event") == "clear"
                )
                clears = caller.clears
                up, down = phone.tone(600, 2.0), phone.tone(1000, 2.0)
                frame = phone.FRAME
                for i in range(0, len(up) // 2, frame):
                    await caller.say(up[i : i + frame], 8000)
                    await human.say(down[i : i + frame], 8000)
                await next_published(aiter(events), "transfer", status="joined")
                await caller.wait_for(lambda p: p.clears > clears)  # the agent muted
                joined_at = phone.muted_at(caller)
                for i in range(len(up) // 2, len(up), frame):
                    await caller.say(up[i : i + frame], 8000)
                    await human.say(down[i : i + frame], 8000)
                quiet = b"\x00\x00" * 8000
                for i in range(0, len(quiet), frame):
                    await caller.say(quiet[i : i + frame], 8000)
                    await human.say(quiet[i : i + frame], 8000)

                async def both_ways() -> bool:
                    return len(phone.heard(caller.received[joined_at:])) >= 8000 and (
                        len(phone.heard(human.received[cleared_at:])) >= 24000
                    )

                await eventually(both_ways)
                to_caller = phone.heard(caller.received[joined_at:])[:8000]
                to_human = phone.heard(human.received[cleared_at:])[8000:24000]
                f_caller, level_caller, agent_caller = phone.analyse(to_caller)
                f_human, level_human, _ = phone.analyse(to_human)
                assert abs(f_human - 600) < 10 and abs(f_caller - 1000) < 10
                expected = 0.3 / np.sqrt(2)
                assert abs(level_human - expected) < 0.05
                assert abs(level_caller - expected) < 0.05
                assert agent_caller < 0.01  # no agent (440 Hz) after joined
                assert not [m for m in caller.received[joined_at:] if m.get("event") == "mark"]

                async def transcribed() -> list[tuple[str, str]]:
                    messages = await a.services.store.list_messages(session_id)
                    said = [(m.role, m.text) for m in messages if m.text == TRANSCRIPT]
                    return said if {r for r, _ in said} >= {"user", "human_agent"} else []

                said = await eventually(transcribed)  # on A, once per utterance
                assert said.count(("human_agent", TRANSCRIPT)) == 1
                assert said.count(("user", TRANSCRIPT)) == 1

                back_at = len(caller.received)
                await human.hang_up()  # the person on B hangs up
                await next_published(aiter(events), "transfer", status="ended")
                await phone.gave_back(caller, back_at)
            await caller.hang_up()
        assert not a.services.transfers.relays


async def test_the_human_s_worker_lost_ends_the_bridge_and_the_ai_comes_back(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bridge_relay, "HUMAN_RENEW_S", 3600.0)  # B renews by hand here
    async with (
        two_workers(make_app, tmp_path, backend) as (a, b),
        websockets.connect(ws_url(a)) as cws,
        websockets.connect(ws_url(b)) as ows,
    ):
        caller, transfer_id, session_id = await caller_on_hold(a, cws)
        human = Voice(ows)
        await human.send({"type": "start", "transfer_id": transfer_id, "operator_key": KEY})
        await human.until("briefing")
        await bridged(caller, human)
        desk_a = a.services.transfers
        await desk_a.renew()
        assert transfer_id in desk_a.relays  # B's key is there: nothing happens

        await a.services.coordinator.delete(bridge_relay.human_key(transfer_id))  # B died
        await desk_a.renew()
        await caller.until("transfer", status="ended")
        assert await caller.until("assistant_text", status="start") is not None
        messages = await a.services.store.list_messages(session_id)
        assert "left the conversation" in messages[-1].text
        assert not desk_a.relays
        await human.closed()  # B closes the human's socket on the final status


async def test_a_chat_caller_on_a_and_the_console_on_b_talk_in_text(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    """Text was never limited to one worker (it goes through pub/sub); kept so."""
    async with two_workers(make_app, tmp_path, backend) as (a, b):
        client, transfer_id = await chat_transfer(a)
        channel = await b.services.lifecycle.subscribe(client.session_id)
        try:
            async with websockets.connect(ws_url(b)) as ows:
                human = Voice(ows)
                await human.send({"type": "start", "transfer_id": transfer_id, "operator_key": KEY})
                await human.until("transfer", status="joined")
                events = [e async for e in client.send("are you a person?")]
                assert [e.event for e in events] == ["transfer", "turn_end"]
                assert (await human.until("caller_message"))["text"] == "are you a person?"
                await human.send({"type": "text", "text": "Yes, I'm Sam."})
                said = await next_published(aiter(channel), "human_message")
                assert said["text"] == "Yes, I'm Sam."
            back = await next_published(aiter(channel), "assistant_message")
            assert "left the conversation" in back["text"]
        finally:
            await channel.close()
        roles = [(m["role"], m["text"]) for m in await client.messages()]
        assert roles.count(("human_agent", "Yes, I'm Sam.")) == 1
        assert not a.services.transfers.relays and not b.services.transfers.relays
        await client.aclose()


async def test_a_phone_caller_on_a_and_the_console_on_b_hear_each_other(
    make_app: AppFactory, tmp_path: Path, backend: dict[str, Any]
) -> None:
    async with phone_workers(make_app, tmp_path, backend) as (a, b, twilio):
        twilio.tunnel = (phone.PUBLIC, a.base_url)
        async with phone.phone_caller(a, twilio, agent="desk") as (caller, session_id, events):
            await caller.press("0")
            dialing = await next_published(aiter(events), "transfer", status="dialing")
            async with websockets.connect(ws_url(b)) as ows:
                human = Voice(ows)
                start = {"type": "start", "transfer_id": dialing["transfer_id"]}
                await human.send({**start, "operator_key": KEY, "sample_rate": 16000})
                ready = await human.until("ready")
                assert ready["caller_channel"] == "phone"
                out_rate = int(ready["output_sample_rate"])
                clears = caller.clears
                frame = phone.FRAME
                up, down = phone.tone(600, 1.0), phone.tone(1000, 1.0, rate=16000)
                for i in range(0, len(up), frame):
                    await caller.say(up[i : i + frame], 8000)
                    await human.send(down[2 * i : 2 * i + 2 * frame])
                await human.until("transfer", status="joined")
                await caller.wait_for(lambda p: p.clears > clears)  # the agent muted
                joined_at = phone.muted_at(caller)
                for i in range(0, len(up), frame):
                    await caller.say(up[i : i + frame], 8000)
                    await human.send(down[2 * i : 2 * i + 2 * frame])

                async def to_caller() -> bool:
                    return len(phone.heard(caller.received[joined_at:])) >= 6000

                await eventually(to_caller)
                human.audio.clear()
                while sum(len(x) for x in human.audio) < out_rate:  # 0.5 s of the caller
                    await asyncio.wait_for(phone.read_frame(human), 10.0)
                heard_by_caller = phone.heard(caller.received[joined_at:])
                f_caller, level_caller, agent_caller = phone.analyse(heard_by_caller)
                f_human, level_human, _ = phone.analyse(b"".join(human.audio), out_rate)
                assert abs(f_caller - 1000) < 10 and abs(f_human - 600) < 10
                expected = 0.3 / np.sqrt(2)
                assert abs(level_human - expected) < 0.05
                assert abs(level_caller - expected) < 0.05
                assert agent_caller < 0.01
            await next_published(aiter(events), "transfer", status="ended")  # B hung up
            await caller.hang_up()

        async def transcribed() -> list[tuple[str, str | None]]:
            messages = await a.services.store.list_messages(session_id)
            said = [(m.role, m.channel) for m in messages if m.text == TRANSCRIPT]
            return said if len(set(said)) == 2 else []

        said = await eventually(transcribed)  # on A, once per direction's utterance
        assert sorted(said) == [("human_agent", "operator"), ("user", "phone")]
        assert not a.services.transfers.relays
