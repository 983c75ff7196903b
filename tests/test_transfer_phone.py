"""Warm transfer with phone legs: a phone caller (simulated Twilio media stream) whose
agent's ``transfer_to`` is a number; Parley asks the local Twilio REST server
(``FakeTwilio``) to call it, and the dialled person's leg is a second simulated
media stream. Also a phone caller bridged to the web console's voice leg.

The agent uses the fake engines (energy VAD, a fixed transcript, 440 Hz sine speech)
and the rules brain: any key pressed asks for a person. Tones: 600 Hz from the
caller, 1000 Hz from the human; each must arrive on the other side at its frequency
and level, and no agent audio (440 Hz, marks) may reach the caller after ``joined``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import numpy as np
import pytest
import websockets

from parley.audio.g711 import decode_ulaw
from parley.channels.bridge_speech import Ended, Speech, Utterances
from parley.channels.phone_human import choice_in
from parley.engines.fake import TRANSCRIPT, FakeEnergyVAD
from parley.sessions.coordinator import Subscription
from parley.testing import FakeClock
from parley.testing.fake_twilio import FakeTwilio
from parley.testing.phone_peer import PhonePeer
from parley.testing.speech import pad_silence, speak_pcm
from tests.plugins.apps import AppFactory, RunningApp
from tests.test_phone_calls import eventually
from tests.test_transfer_console import next_published
from tests.test_voice_ws import Voice

PUBLIC = "https://parley.example.com"
ACCOUNT, TOKEN = "AC" + "1" * 32, "f" * 32
KEY = "op-secret"
HUMAN = "+15550009999"
AGENT = f"""
name: line
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {{stt: fake, tts: fake, vad: fake_energy}}
voice: {{false_interruption_secs: 0, turn_detection: silence}}
transfer_to: "{HUMAN}"
tools:
  - name: transfer_to_human
rules:
  - intent: human
    keywords: [pressed]
    tool: transfer_to_human
"""
SPOKEN_AGENT = AGENT.replace("name: line", "name: spoken").replace("stt: fake", "stt: pocketsphinx")
CONSOLE_AGENT = AGENT.replace("name: line", "name: desk").replace(f'transfer_to: "{HUMAN}"', "")
FRAME = 320  # 20 ms of 8 kHz PCM16


@pytest.fixture
async def line(
    make_app: AppFactory, tmp_path: Path
) -> AsyncIterator[tuple[RunningApp, FakeTwilio]]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "line.yaml").write_text(AGENT)
    (agents / "desk.yaml").write_text(CONSOLE_AGENT)
    (agents / "spoken.yaml").write_text(SPOKEN_AGENT)
    async with FakeTwilio(ACCOUNT, TOKEN) as twilio:
        settings = {
            "agents_dir": agents,
            "public_url": PUBLIC,
            "operator_key": KEY,
            "twilio_account_sid": ACCOUNT,
            "twilio_auth_token": TOKEN,
            "twilio_from": "+15559990000",
            "twilio_api_base": twilio.base_url,
        }
        async with make_app(**settings) as app:
            twilio.tunnel = (PUBLIC, app.base_url)
            yield app, twilio


def tone(freq: float, seconds: float, amp: float = 0.3, rate: int = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2").tobytes()


def heard(messages: list[dict[str, Any]]) -> bytes:
    """The μ-law media in these messages, as 8 kHz PCM16."""
    ulaw = b"".join(
        base64.b64decode(m["media"]["payload"]) for m in messages if m.get("event") == "media"
    )
    return decode_ulaw(ulaw)


def analyse(pcm: bytes, rate: int = 8000) -> tuple[float, float, float]:
    """Peak frequency, RMS level, and the share of energy near 440 Hz (the agent)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    x = x[len(x) // 4 :]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    near_440 = spectrum[(freqs > 420) & (freqs < 460)].sum() / spectrum.sum()
    return float(freqs[np.argmax(spectrum)]), float(np.sqrt(np.mean(x**2))), float(near_440)


def stream_of(app: RunningApp, answer: httpx.Response) -> tuple[str, dict[str, str]]:
    """The local stream URL and the parameters of a TwiML ``<Connect><Stream>``."""
    assert answer.status_code == 200, answer.text
    stream = ET.fromstring(answer.text).find("./Connect/Stream")
    assert stream is not None, answer.text
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return app.base_url.replace("http", "ws", 1) + urlsplit(stream.attrib["url"]).path, params


@contextlib.asynccontextmanager
async def phone_caller(
    app: RunningApp, twilio: FakeTwilio, agent: str = "line"
) -> AsyncIterator[tuple[PhonePeer, str, Subscription]]:
    """An inbound call to the agent: (its stream, its session id, the session's events)."""
    voice_url = f"{PUBLIC}/v1/telephony/twilio/voice?agent={agent}"
    sid, answer = await twilio.incoming(voice_url, "+15550001111", "+15550002222")
    url, params = stream_of(app, answer)
    async with PhonePeer.dial(url, parameters=params, call_id=sid) as peer:
        await peer.wait_for(lambda p: p.marks_sent)  # the greeting
        session_id = await app.services.coordinator.get(f"phone:call-session:{sid}")
        assert session_id
        events = await app.services.lifecycle.subscribe(str(session_id))
        try:
            yield peer, str(session_id), events
        finally:
            await events.close()


async def ask_for_a_person(
    twilio: FakeTwilio, caller: PhonePeer, events: Subscription
) -> tuple[str, str]:
    """Press a key: the transfer dials the number. (transfer id, the human's call SID)"""
    await caller.press("0")
    dialing = await next_published(aiter(events), "transfer", status="dialing")

    async def placed() -> str | None:
        return next((sid for sid, c in twilio.calls.items() if c.to == HUMAN), None)

    return str(dialing["transfer_id"]), str(await eventually(placed))


def created(twilio: FakeTwilio, sid: str) -> dict[str, list[str]]:
    """The form of the REST request that created the call."""
    call = twilio.calls[sid]
    return next(
        form
        for method, path, form in twilio.requests
        if path.endswith("/Calls.json") and form.get("Url", [None])[0] == call.url
    )


async def talk_until_joined(caller: PhonePeer, human: PhonePeer, events: Subscription) -> None:
    """Both legs send 20 ms frames (as carriers do, all the time) until ``joined``."""
    beep = tone(1000, 0.02)

    async def talk() -> None:
        while True:
            await caller.say(beep, 8000)
            await human.say(beep, 8000)
            await asyncio.sleep(0.02)  # a carrier's pace, not a wait for a result

    talking = asyncio.create_task(talk())
    try:
        await next_published(aiter(events), "transfer", status="joined")
    finally:
        talking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talking


def hold_beep(received: list[dict[str, Any]]) -> bytes:
    """Audio sent after the agent's last mark (the hold tone), as 8 kHz PCM16."""
    marks = [i for i, m in enumerate(received) if m.get("event") == "mark"]
    return heard(received[marks[-1] + 1 :]) if marks else b""


def muted_at(peer: PhonePeer) -> int:
    """Where the agent was muted on the caller's stream (its last ``clear``): all that
    follows is the bridge."""
    return max(i for i, m in enumerate(peer.received) if m.get("event") == "clear") + 1


async def gave_back(peer: PhonePeer, since: int) -> None:
    """The agent speaks to the caller again (its speech carries marks)."""
    await peer.wait_for(lambda p: any(m.get("event") == "mark" for m in p.received[since:]))


# --- phone to phone ---------------------------------------------------------------------------


async def test_phone_to_phone_briefed_accepted_bridged_transcribed_and_hung_up(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, session_id, events):
        transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        form = created(twilio, human_sid)
        assert form["From"] == ["+15559990000"] and form["Timeout"] == ["30"]
        assert dict(parse_qsl(urlsplit(form["Url"][0]).query)) == {"transfer_id": transfer_id}
        assert "transfer_id=" in form["StatusCallback"][0]

        url, params = stream_of(app, await twilio.answer(human_sid))  # the person picks up
        assert params["transfer_id"] == transfer_id and params["token"]
        assert "agent" not in params  # not a new AI session
        async with PhonePeer.dial(url, parameters=params, call_id=human_sid) as human:
            await next_published(aiter(events), "transfer", status="briefing")
            await human.wait_for(lambda p: len(p.received) > 5)  # the briefing, spoken
            await human.press("1")
            await human.wait_for(lambda p: p.clears)  # the rest of the briefing is cut
            cleared_at = next(i for i, m in enumerate(human.received) if m.get("event") == "clear")

            clears = caller.clears
            up, down = tone(600, 2.0), tone(1000, 2.0)
            for i in range(0, len(up) // 2, FRAME):  # one second, both ways
                await caller.say(up[i : i + FRAME], 8000)
                await human.say(down[i : i + FRAME], 8000)
            await next_published(aiter(events), "transfer", status="joined")
            await caller.wait_for(lambda p: p.clears > clears)  # the agent is muted: ``clear``
            joined_at = muted_at(caller)
            for i in range(len(up) // 2, len(up), FRAME):
                await caller.say(up[i : i + FRAME], 8000)
                await human.say(down[i : i + FRAME], 8000)
            quiet = b"\x00\x00" * 8000
            for i in range(0, len(quiet), FRAME):  # a pause: both utterances end
                await caller.say(quiet[i : i + FRAME], 8000)
                await human.say(quiet[i : i + FRAME], 8000)

            async def both_ways() -> bool:
                return len(heard(caller.received[joined_at:])) >= 8000 and (
                    len(heard(human.received[cleared_at:])) >= 24000
                )

            await eventually(both_ways)  # (then a second of quiet follows each tone)
            to_caller = heard(caller.received[joined_at:])[:8000]  # 0.5 s of the human
            to_human = heard(human.received[cleared_at:])[8000:24000]  # the caller, 0.5-1.5 s
            f_caller, level_caller, agent_caller = analyse(to_caller)
            f_human, level_human, _ = analyse(to_human)
            assert abs(f_human - 600) < 10 and abs(f_caller - 1000) < 10
            expected = 0.3 / np.sqrt(2)
            assert abs(level_human - expected) < 0.05 and abs(level_caller - expected) < 0.05
            # No agent after joined: no 440 Hz, and none of its marks.
            assert agent_caller < 0.01
            assert not [m for m in caller.received[joined_at:] if m.get("event") == "mark"]

            async def transcribed() -> list[tuple[str, str]]:
                messages = await app.services.store.list_messages(session_id)
                said = [(m.role, m.text) for m in messages if m.text == TRANSCRIPT]
                return said if {r for r, _ in said} >= {"user", "human_agent"} else []

            said = await eventually(transcribed)
            assert ("user", TRANSCRIPT) in said and ("human_agent", TRANSCRIPT) in said
            # the person's call made no AI session of its own
            assert await app.services.coordinator.get(f"phone:call-session:{human_sid}") is None

            back_at = len(caller.received)
            await human.hang_up()
            await next_published(aiter(events), "transfer", status="ended")
            await gave_back(caller, back_at)  # "The team member has left…"
        await caller.hang_up()
    updates = twilio.calls[human_sid].updates
    assert {"Status": ["completed"]} in updates or not updates  # hung up, at most once
    messages = await app.services.store.list_messages(session_id)
    assert any("left the conversation" in m.text for m in messages if m.role == "assistant")


@pytest.mark.parametrize("words", ["connect", "decline"])
async def test_the_human_answers_in_words(line: tuple[RunningApp, FakeTwilio], words: str) -> None:
    """Real speech (espeak-ng, μ-law) to the embedded recogniser: "connect" bridges
    the call, "decline" sends the caller back to the agent."""
    app, twilio = line
    async with phone_caller(app, twilio, agent="spoken") as (caller, _session_id, events):
        _transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        url, params = stream_of(app, await twilio.answer(human_sid))
        async with PhonePeer.dial(url, parameters=params, call_id=human_sid) as human:
            await next_published(aiter(events), "transfer", status="briefing")
            speech = pad_silence(speak_pcm(words, sample_rate=8000), 0.3, 1.0, 8000)
            for i in range(0, len(speech), FRAME):
                await human.say(speech[i : i + FRAME], 8000)
            if words == "decline":
                failed = await next_published(aiter(events), "transfer", status="failed")
                assert failed["reason"] == "declined"
                await human.wait_for(lambda p: p.closed)
            else:
                await human.wait_for(lambda p: p.clears)  # accepted: the briefing is cut
                await talk_until_joined(caller, human, events)
        await caller.hang_up()


async def test_no_answer_gives_the_caller_back_to_the_ai(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, session_id, events):
        transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        # On hold: after the agent's notice, a soft 440 Hz beep, μ-law, with no mark.
        await caller.wait_for(lambda p: len(hold_beep(p.received)) >= 4000, within_s=15)
        f, level, _ = analyse(hold_beep(caller.received)[:4000])  # one 0.25 s beep
        assert abs(f - 440) < 10 and 0.01 < level < 0.06
        back_at = len(caller.received)
        assert (await twilio.send_status(human_sid, "ringing")).status_code == 204
        assert (await twilio.send_status(human_sid, "no-answer")).status_code == 204
        failed = await next_published(aiter(events), "transfer", status="failed")
        assert failed == {**failed, "transfer_id": transfer_id, "reason": "no_answer"}
        await gave_back(caller, back_at)
        await caller.hang_up()
    assert twilio.calls[human_sid].updates == []  # the call was over: nothing to cancel
    messages = await app.services.store.list_messages(session_id)
    assert any("nobody from the team" in m.text for m in messages if m.role == "assistant")
    session = await app.services.store.get_session(session_id)
    assert session is not None  # the caller's session was not ended by the human's call


async def test_twilio_refusing_the_call_fails_the_transfer_and_the_ai_comes_back(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, session_id, events):
        twilio.fail_next = (400, 21211, "The 'To' number is not a valid phone number")
        back_at = len(caller.received)
        await caller.press("0")
        failed = await next_published(aiter(events), "transfer", status="failed")
        assert failed["reason"] == "error"
        await gave_back(caller, back_at)
        assert not [c for c in twilio.calls.values() if c.to == HUMAN]
        await caller.hang_up()
    messages = await app.services.store.list_messages(session_id)
    assert any("nobody from the team" in m.text for m in messages if m.role == "assistant")


async def test_busy_is_a_failure_with_its_reason(line: tuple[RunningApp, FakeTwilio]) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, _session_id, events):
        _transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        await twilio.send_status(human_sid, "busy")
        failed = await next_published(aiter(events), "transfer", status="failed")
        assert failed["reason"] == "busy"
        await caller.hang_up()


async def test_the_human_declines_with_2(line: tuple[RunningApp, FakeTwilio]) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, session_id, events):
        _transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        url, params = stream_of(app, await twilio.answer(human_sid))
        async with PhonePeer.dial(url, parameters=params, call_id=human_sid) as human:
            await next_published(aiter(events), "transfer", status="briefing")
            back_at = len(caller.received)
            await human.press("2")
            failed = await next_published(aiter(events), "transfer", status="failed")
            assert failed["reason"] == "declined"
            await human.wait_for(lambda p: p.closed)  # Parley ends the person's call
            await gave_back(caller, back_at)
        await caller.hang_up()
    await twilio.updated(human_sid, {"Status": ["completed"]})
    messages = await app.services.store.list_messages(session_id)
    assert any("nobody from the team" in m.text for m in messages if m.role == "assistant")


async def test_the_caller_hanging_up_while_dialing_cancels_the_call(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, _session_id, events):
        transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        await caller.hang_up()
        cancelled = await next_published(aiter(events), "transfer", status="cancelled")
        assert cancelled["transfer_id"] == transfer_id

    async def cancelled_call() -> bool:
        return twilio.calls[human_sid].status == "canceled"

    await eventually(cancelled_call)
    assert twilio.calls[human_sid].updates == [{"Status": ["canceled"]}]
    # The person picks up too late: a polite goodbye, no stream.
    late = await twilio.answer(human_sid)
    assert "<Hangup/>" in late.text and "<Stream" not in late.text


async def test_the_caller_hanging_up_during_the_bridge_ends_the_person_s_call(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, _session_id, events):
        _transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        url, params = stream_of(app, await twilio.answer(human_sid))
        async with PhonePeer.dial(url, parameters=params, call_id=human_sid) as human:
            await human.press("1")
            await talk_until_joined(caller, human, events)
            await caller.hang_up()
            ended = await next_published(aiter(events), "transfer", status="ended")
            assert ended["reason"]  # why it was asked for
            await human.wait_for(lambda p: p.closed)  # Parley closes the person's stream
    await twilio.updated(human_sid, {"Status": ["completed"]})  # and hangs up their call


async def test_ringing_30_s_on_the_clock_fails_with_timeout_and_cancels(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    desk = app.services.transfers
    clock = FakeClock()
    desk.board.clock = clock  # the board's time only: the calls run in real time
    async with phone_caller(app, twilio) as (caller, session_id, events):
        transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        back_at = len(caller.received)
        clock.advance(29.0)
        assert await desk.sweep() == []
        clock.advance(1.0)
        changed = await desk.sweep()
        assert [(t.id, t.status.value, t.failure) for t in changed] == [
            (transfer_id, "failed", "timeout")
        ]
        await gave_back(caller, back_at)
        assert twilio.calls[human_sid].updates == [{"Status": ["canceled"]}]
        await caller.hang_up()
    messages = await app.services.store.list_messages(session_id)
    assert any("nobody from the team" in m.text for m in messages if m.role == "assistant")


async def test_a_lost_worker_s_transfer_expires_to_failed_and_the_caller_gets_the_ai_back(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    """The worker holding the transfer stops renewing its lease (it died): the
    coordinator lets the transfer expire, every worker reads it as ``failed{error}``,
    the person's call is closed and the caller hears the AI again."""
    app, twilio = line
    desk = app.services.transfers
    desk.board.lease_s = 1.0  # real seconds: the in-process coordinator's TTL
    async with phone_caller(app, twilio) as (caller, _session_id, events):
        transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        url, params = stream_of(app, await twilio.answer(human_sid))
        async with PhonePeer.dial(url, parameters=params, call_id=human_sid) as human:
            await next_published(aiter(events), "transfer", status="briefing")
            back_at = len(caller.received)
            desk.held.discard(transfer_id)  # nobody renews it any more

            async def expired() -> bool:
                return await desk.board.get(transfer_id) is None

            await eventually(expired)
            assert await desk.board.live() == []  # announces the loss
            failed = await next_published(aiter(events), "transfer", status="failed")
            assert failed == {**failed, "transfer_id": transfer_id, "reason": "error"}
            await human.wait_for(lambda p: p.closed)
            await gave_back(caller, back_at)
        await caller.hang_up()


# --- a phone caller and the web console ---------------------------------------------------------


async def test_a_phone_caller_is_bridged_to_the_console_voice_leg(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    async with phone_caller(app, twilio, agent="desk") as (caller, session_id, events):
        await caller.press("0")
        dialing = await next_published(aiter(events), "transfer", status="dialing")
        assert not [c for c in twilio.calls.values() if c.to == HUMAN]  # the console
        ws_url = app.base_url.replace("http", "ws", 1) + "/v1/voice"
        async with websockets.connect(ws_url) as ows:
            human = Voice(ows)
            start = {"type": "start", "transfer_id": dialing["transfer_id"], "operator_key": KEY}
            await human.send({**start, "sample_rate": 16000})
            ready = await human.until("ready")
            assert ready["caller_channel"] == "phone"
            out_rate = int(ready["output_sample_rate"])
            clears = caller.clears
            up, down = tone(600, 1.0), tone(1000, 1.0, rate=16000)
            for i in range(0, len(up), FRAME):
                await caller.say(up[i : i + FRAME], 8000)
                await human.send(down[2 * i : 2 * i + 2 * FRAME])
            await human.until("transfer", status="joined")
            await caller.wait_for(lambda p: p.clears > clears)
            joined_at = muted_at(caller)
            for i in range(0, len(up), FRAME):
                await caller.say(up[i : i + FRAME], 8000)
                await human.send(down[2 * i : 2 * i + 2 * FRAME])

            async def to_caller() -> bool:
                return len(heard(caller.received[joined_at:])) >= 6000

            await eventually(to_caller)
            human.audio.clear()
            while sum(len(a) for a in human.audio) < out_rate:  # 0.5 s of the caller
                await asyncio.wait_for(read_frame(human), 10.0)
            f_caller, level_caller, agent_caller = analyse(heard(caller.received[joined_at:]))
            f_human, level_human, _ = analyse(b"".join(human.audio), out_rate)
            assert abs(f_caller - 1000) < 10 and abs(f_human - 600) < 10
            expected = 0.3 / np.sqrt(2)
            assert abs(level_human - expected) < 0.05 and abs(level_caller - expected) < 0.05
            assert agent_caller < 0.01
        await next_published(aiter(events), "transfer", status="ended")
        await caller.hang_up()

    async def transcribed() -> set[tuple[str, str | None]]:
        messages = await app.services.store.list_messages(session_id)
        said = {(m.role, m.channel) for m in messages if m.text == TRANSCRIPT}
        return said if len(said) == 2 else set()

    assert await eventually(transcribed) == {("user", "phone"), ("human_agent", "operator")}


async def read_frame(voice: Voice) -> None:
    msg = await voice.ws.recv()
    if isinstance(msg, bytes):
        voice.audio.append(msg)
    else:
        voice.events.append(json.loads(msg))


async def test_an_operator_taking_a_ringing_phone_transfer_cancels_the_call(
    line: tuple[RunningApp, FakeTwilio],
) -> None:
    app, twilio = line
    async with phone_caller(app, twilio) as (caller, _session_id, events):
        transfer_id, human_sid = await ask_for_a_person(twilio, caller, events)
        ws_url = app.base_url.replace("http", "ws", 1) + "/v1/voice"
        async with websockets.connect(ws_url) as ows:
            human = Voice(ows)
            await human.send({"type": "start", "transfer_id": transfer_id, "operator_key": KEY})
            await human.until("briefing")
            assert twilio.calls[human_sid].updates == [{"Status": ["canceled"]}]
            late = await twilio.answer(human_sid)  # the phone is picked up too late
            assert "<Hangup/>" in late.text
        await caller.hang_up()


# --- the pure parts -----------------------------------------------------------------------------


def test_the_human_s_words_accept_or_decline() -> None:
    assert choice_in("Connect") == "accept"
    assert choice_in("yes connect me") == "accept"
    assert choice_in("decline") == "decline"
    assert choice_in("no, connect... no") == "decline"
    assert choice_in("I would like to book a table") is None


def test_utterances_are_cut_on_the_audio_s_own_time() -> None:
    cuts = Utterances(FakeEnergyVAD().open_stream(), stop_ms=600)
    loud = tone(500, 0.5, rate=16000)
    steps = cuts.feed(b"\x00\x00" * 3200 + loud + b"\x00\x00" * 9600)
    speech = [s for s in steps if isinstance(s, Speech)]
    assert isinstance(steps[-1], Ended) and sum(isinstance(s, Ended) for s in steps) == 1
    # pre-roll (up to 200 ms) + 0.5 s of speech + 600 ms of quiet before the end
    assert sum(len(s.pcm) for s in speech) == 2 * (3200 + 8000 + 9600)
    assert cuts.feed(b"\x00\x00" * 16000) == [] and cuts.end() == []
