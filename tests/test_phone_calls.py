"""Phone calls end to end: a simulated carrier (Twilio or Telnyx dialect) answers the
real voice webhook, dials the real stream socket and talks to the whole app.

Most agents here use the benchmark's fake engines (energy VAD, a fixed transcript
"I would like to book a table for two tonight", 100 ms of sine per word) so the tests
are about the call; one test speaks real espeak-ng speech to the embedded recogniser.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import numpy as np
import pytest
import websockets

from parley.config import BUILTIN_AGENTS_DIR
from parley.sessions.records import Session
from parley.testing.phone_peer import TELNYX, TWILIO, Dialect, PhonePeer
from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import sqlite_url
from tests.test_chat_api import collect, one

PUBLIC = "https://parley.example.com"
LONG_REPLY = (
    "First sentence is short. "
    "Then comes a second sentence that goes on for quite a while, with many more words in it "
    "than anybody would want to hear on the phone before they get a word in. "
    "And a third sentence closes it."
)
AGENTS = {
    "phonefake.yaml": f"""
name: phonefake
brain: rules
greeting: "Hi {{caller}}."
fallback: "Pardon?"
engines: {{stt: fake, tts: fake, vad: fake_energy}}
# the carrier protocol is under test here, not turn-taking: speech over the agent cuts it
# at once (issue 14's pause-then-decide recovery is tested in test_voice_recovery.py)
voice: {{false_interruption_secs: 0, turn_detection: silence}}
limits: {{max_duration_s: 3600}}
rules:
  - intent: reserve
    keywords: [table]
    say: "{LONG_REPLY}"
  - intent: pressed
    keywords: [pressed]
    say: "You pressed a key."
""",
}
REPLY_WORDS = len(LONG_REPLY.split())
WORD_BYTES = 800  # 100 ms of 8 kHz μ-law per word of the fake TTS


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


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
    async with make_app(agents_dir=agents, public_url=PUBLIC) as running:
        yield running


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (3000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def quiet(seconds: float, rate: int = 16000) -> bytes:
    return b"\x00\x00" * int(rate * seconds)


def utterance() -> bytes:
    return quiet(0.3) + tone(0.6) + quiet(0.8)


CARRIERS = pytest.mark.parametrize("dialect", [TWILIO, TELNYX], ids=["twilio", "telnyx"])


async def answer_call(
    app: RunningApp, dialect: Dialect, call_id: str, query: str = ""
) -> tuple[str, dict[str, str]]:
    """Post the carrier's voice webhook; the local stream URL and its parameters."""
    form = {
        "CallSid": call_id,
        "From": "+15550001111",
        "To": "+15550002222",
        "Direction": "inbound",
    }
    path = f"/v1/telephony/{dialect.name}/voice"
    async with httpx.AsyncClient() as http:
        resp = await http.post(app.base_url + path + (f"?{query}" if query else ""), data=form)
    assert resp.status_code == 200, resp.text
    stream = ET.fromstring(resp.text).find("./Connect/Stream")
    assert stream is not None
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    public = urlsplit(stream.attrib["url"])
    local = app.base_url.replace("http", "ws", 1) + public.path
    return local + (f"?{public.query}" if public.query else ""), params


async def dial(
    app: RunningApp, dialect: Dialect, call_id: str = "CA" + "7" * 32, query: str = ""
) -> Any:
    url, params = await answer_call(app, dialect, call_id, query)
    if dialect is TELNYX:  # Telnyx: the parameters ride in the stream URL's query only
        assert dict(parse_qsl(urlsplit(url).query)) == params
        params = {}
    return PhonePeer.dial(url, dialect=dialect, parameters=params, call_id=call_id)


async def eventually(check: Callable[[], Any], within_s: float = 10.0) -> Any:
    """Poll the server's state (bounded) until ``check()`` is truthy."""
    async with asyncio.timeout(within_s):
        while not (result := await check()):  # noqa: ASYNC110 (server state: no event)
            await asyncio.sleep(0.02)
    return result


async def session_of_call(app: RunningApp, call_id: str) -> Session:
    async def find() -> Session | None:
        session_id = await app.services.coordinator.get(f"phone:call-session:{call_id}")
        return await app.services.store.get_session(str(session_id)) if session_id else None

    found: Session = await eventually(find)
    return found


async def ended(app: RunningApp, session_id: str) -> Session:
    async def check() -> Session | None:
        session = await app.services.store.get_session(session_id)
        return session if session is not None and session.status != "active" else None

    done: Session = await eventually(check)
    return done


async def assistant_texts(app: RunningApp, session_id: str) -> list[str]:
    messages = await app.services.store.list_messages(session_id)
    return [m.text for m in messages if m.role == "assistant"]


def spoken_bytes(peer: PhonePeer) -> int:
    return len(peer.heard_audio) + peer.queued_bytes


# --- a call, start to hang-up ------------------------------------------------------------


@CARRIERS
async def test_an_inbound_call_is_greeted_answered_and_hung_up(
    app: RunningApp, dialect: Dialect
) -> None:
    call_id = "CA" + "3" * 32
    async with await dial(app, dialect, call_id, "agent=phonefake") as peer:
        await peer.wait_for(lambda p: p.marks_sent)  # the greeting "Hi +15550001111."
        session = await session_of_call(app, call_id)
        assert session.agent == "phonefake" and session.current_channel == "phone"
        assert session.template_vars["caller"] == "+15550001111"
        assert session.metadata["phone"]["direction"] == "inbound"
        await peer.wait_for(lambda p: spoken_bytes(p) >= 2 * WORD_BYTES)
        await peer.play(1.0)  # the greeting, all heard
        await peer.say(utterance())  # 20 ms μ-law messages
        await peer.wait_for(lambda p: p.queued_bytes >= REPLY_WORDS * WORD_BYTES)  # the answer
        media = [m for m in peer.received if m["event"] == "media"]
        assert all(len(m["media"]["payload"]) <= 216 for m in media)  # ≤ 20 ms μ-law each
        await peer.play(REPLY_WORDS * 0.1)  # all of it heard: every mark echoed
        assert not peer.queued_bytes
        await peer.hang_up()
        done = await ended(app, session.id)
    assert done.end_reason == "USER_ENDED" and done.current_channel == "chat"
    messages = await app.services.store.list_messages(session.id)
    users = [m.text for m in messages if m.role == "user"]
    assert users[0] == "I would like to book a table for two tonight"
    assert await assistant_texts(app, session.id) == ["Hi +15550001111.", LONG_REPLY]
    assert peer.clears == 0


@CARRIERS
async def test_barge_in_clears_the_carrier_and_keeps_only_what_was_heard(
    app: RunningApp, dialect: Dialect
) -> None:
    call_id = "CA" + "4" * 32
    async with await dial(app, dialect, call_id, "agent=phonefake") as peer:
        session = await session_of_call(app, call_id)
        await peer.wait_for(lambda p: spoken_bytes(p) >= 2 * WORD_BYTES)
        await peer.play(1.0)
        greeting_audio = len(peer.heard_audio)
        await peer.say(utterance())
        # the first sentence (4 words) and a bit of the second reached the caller's line
        await peer.wait_for(lambda p: p.queued_bytes >= 5 * WORD_BYTES)
        echoed = await peer.play(0.5)
        assert echoed  # marks came back: heard
        assert len(peer.heard_audio) - greeting_audio == 5 * WORD_BYTES
        # the next batch is at the carrier, unplayed, when the caller talks over the agent
        # (with everything sent already played there would be nothing to clear)
        await peer.wait_for(lambda p: p.queued_bytes > 0)
        await peer.say(tone(0.6) + quiet(0.8))
        await peer.wait_for(lambda p: p.clears >= 1)
        assert peer.marks_dropped  # the marks still queued came back unplayed

        async def cut() -> bool:
            texts = await assistant_texts(app, session.id)
            return len(texts) >= 2 and texts[1] != LONG_REPLY

        await eventually(cut)
        await peer.hang_up()
        await ended(app, session.id)
    replies = [
        m for m in await app.services.store.list_messages(session.id) if m.role == "assistant"
    ]
    assert replies[1].text == "First sentence is short."  # the marks echoed, not a time estimate
    assert replies[1].interrupted


@CARRIERS
async def test_dtmf_1_approves_the_pending_booking_of_an_outbound_call(
    app: RunningApp, dialect: Dialect
) -> None:
    client = app.client()
    chat = await client.create_session("fakebook")
    await collect(client.send("I'd like a table for 2 tomorrow at 7pm"))
    events = await collect(client.send("My name is Ann Lee"))
    request = one(events, "approval_requested")
    session_id = chat["session_id"]
    call_id = "CA" + "5" * 32
    query = urlencode({"agent": "fakebook", "session_id": session_id})
    async with await dial(app, dialect, call_id, query) as peer:
        await eventually(lambda: app.services.coordinator.get(f"phone:call-session:{call_id}"))
        await peer.press("1")
        approvals = app.services.store

        async def approved() -> bool:
            rows = await approvals.list_approvals(session_id, "approved")
            return bool(rows)

        await eventually(approved)
        await peer.wait_for(lambda p: p.marks_sent)  # the confirmation is spoken
        await peer.press("7")  # no approval pending: a user turn "[pressed 7]"

        async def pressed() -> bool:
            messages = await app.services.store.list_messages(session_id)
            return any(m.text == "[pressed 7]" for m in messages)

        await eventually(pressed)
        await peer.hang_up()
        await ended(app, session_id)
    rows = await app.services.store.list_approvals(session_id, "approved")
    assert [(r.tool_call_id, r.decided_by) for r in rows] == [(request["tool_call_id"], "dtmf")]
    users = [m.text for m in await app.services.store.list_messages(session_id) if m.role == "user"]
    assert "[pressed 7]" in users
    await client.aclose()


# --- real speech on the line -------------------------------------------------------------


async def test_real_speech_through_mu_law_is_recognised_and_answered(app: RunningApp) -> None:
    """espeak-ng speech, μ-law 8 kHz in 20 ms messages → the demo agent's phone-grade
    pocketsphinx → the booking flow answers with espeak speech as μ-law media."""
    from parley.testing.speech import pad_silence, speak_pcm16k

    call_id = "CA" + "6" * 32
    speech = pad_silence(speak_pcm16k("I would like to book a table"), 0.5, 1.5)
    async with await dial(app, TWILIO, call_id) as peer:
        session = await session_of_call(app, call_id)
        assert session.agent == "demo"
        await peer.wait_for(lambda p: p.marks_sent, within_s=30)  # the greeting
        await peer.wait_for(lambda p: not p.queued_bytes or p.marks_sent, within_s=30)
        await peer.play(30.0)  # the whole greeting, heard
        greeting_marks = len(peer.marks_sent)
        await peer.say(speech)
        await peer.wait_for(lambda p: len(p.marks_sent) > greeting_marks, within_s=30)

        async def answered() -> list[str]:
            messages = await app.services.store.list_messages(session.id)
            return [m.text for m in messages if m.role == "user"]

        users = await eventually(answered, within_s=30)

        async def answer_spoken() -> bool:  # the caller listens to the answer
            await peer.play(0.2)
            texts = await assistant_texts(app, session.id)
            return len(texts) >= 2 and "how many" in texts[1].lower()

        heard_before = len(peer.heard_audio)
        await eventually(answer_spoken, within_s=30)
        await peer.wait_for(lambda p: p.queued_bytes, within_s=30)
        await peer.play(0.5)
        assert len(peer.heard_audio) > heard_before  # answered with μ-law media
        await peer.hang_up()
        await ended(app, session.id)
    assert "table" in users[0], users


# --- bad input, refused streams, the end ---------------------------------------------------


async def active_sessions(app: RunningApp) -> int:
    """Active sessions (every phonefake session has an expiry, so all are listed)."""
    far = datetime.now(UTC) + timedelta(days=1)
    return len(await app.services.store.list_expiring(far))


def bad_count(app: RunningApp) -> float:
    value = app.services.metrics.registry.get_sample_value(
        "parley_bad_messages_total", {"channel": "phone"}
    )
    return value or 0.0


async def test_bad_messages_are_counted_and_the_call_and_its_turns_go_on(
    app: RunningApp,
) -> None:
    call_id = "CA" + "8" * 32
    async with await dial(app, TWILIO, call_id, "agent=phonefake") as peer:
        session = await session_of_call(app, call_id)
        await peer.wait_for(lambda p: p.marks_sent)
        before = bad_count(app)
        media = TWILIO.media(1, 20, b"\xff" * 160)
        bad_b64 = {**media, "media": {**media["media"], "payload": "not base64!!"}}
        for text in [
            "{not json",
            "[1, 2]",
            '{"event": "bogus"}',
            '{"event": "media"}',
            "x" * 70000,  # oversized
        ]:
            await peer.ws.send(text)
        await peer.send(bad_b64)
        await peer.send(TWILIO.mark("9.99"))  # a mark never sent
        await peer.send({**TWILIO.dtmf("%")})  # not a key
        await peer.say(utterance())  # the call goes on

        async def answered() -> bool:
            texts = await assistant_texts(app, session.id)
            return len(texts) >= 2

        await eventually(answered)
        assert bad_count(app) - before == 8
        await peer.hang_up()
        done = await ended(app, session.id)
    assert done.end_reason == "USER_ENDED"
    messages = await app.services.store.list_messages(session.id)
    assert [m.role for m in messages][:3] == ["assistant", "user", "assistant"]


async def test_media_before_start_is_counted_and_a_bad_token_is_refused(
    app: RunningApp,
) -> None:
    import json

    url, params = await answer_call(app, TWILIO, "CA" + "9" * 32, "agent=phonefake")
    before = bad_count(app)
    sessions_before = await active_sessions(app)
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps(TWILIO.connected()))
        await ws.send(json.dumps({**TWILIO.media(1, 20, b"\xff" * 160), "streamSid": "MZ1"}))
        await ws.send(json.dumps({**TWILIO.dtmf("1"), "streamSid": "MZ1"}))
        forged = {**params, "token": params["token"][:-2] + "xx"}
        start = TWILIO.start("MZ1", "CA" + "9" * 32, forged)
        await ws.send(json.dumps({**start, "streamSid": "MZ1"}))
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1008
    assert bad_count(app) - before == 2
    assert await active_sessions(app) == sessions_before  # nothing created
    # the genuine token of another call is refused too (bound to its CallSid)
    async with PhonePeer.dial(url, parameters=params, call_id="CA" + "0" * 32) as peer:
        await peer.wait_for(lambda p: p.closed)
    assert await active_sessions(app) == sessions_before


async def test_a_socket_closed_without_stop_ends_the_session_disconnected(
    app: RunningApp,
) -> None:
    call_id = "CA" + "a" * 32
    async with await dial(app, TELNYX, call_id, "agent=phonefake") as peer:
        session = await session_of_call(app, call_id)
        await peer.wait_for(lambda p: p.marks_sent)
    done = await ended(app, session.id)
    assert done.end_reason == "DISCONNECTED" and done.current_channel == "chat"
    assert await assistant_texts(app, session.id) == ["Hi +15550001111."]


async def test_ending_the_session_over_http_hangs_up_the_call(app: RunningApp) -> None:
    client = app.client()
    chat = await client.create_session("phonefake")
    call_id = "CA" + "b" * 32
    query = urlencode({"agent": "phonefake", "session_id": chat["session_id"]})
    async with await dial(app, TWILIO, call_id, query) as peer:
        await session_of_call(app, call_id)
        await client.end()
        await peer.wait_for(lambda p: p.closed)
    done = await ended(app, chat["session_id"])
    assert done.end_reason == "USER_ENDED"
    await client.aclose()


async def post_status(app: RunningApp, call_id: str, status: str, query: str = "") -> None:
    form = {"CallSid": call_id, "CallStatus": status}
    path = "/v1/telephony/twilio/status" + (f"?{query}" if query else "")
    async with httpx.AsyncClient() as http:
        resp = await http.post(app.base_url + path, data=form)
    assert resp.status_code == 204, resp.text


async def test_status_callbacks_end_the_calls_session(app: RunningApp) -> None:
    # inbound: the stream named the session of the call; "completed" hangs it up
    call_id = "CA" + "c" * 32
    async with await dial(app, TWILIO, call_id, "agent=phonefake") as peer:
        session = await session_of_call(app, call_id)
        await post_status(app, call_id, "ringing")
        assert (await app.services.store.get_session(session.id)).status == "active"  # type: ignore[union-attr]
        await post_status(app, call_id, "completed")
        await peer.wait_for(lambda p: p.closed)
    assert (await ended(app, session.id)).end_reason == "USER_ENDED"
    # outbound, never answered: busy ends it ERROR; a callback naming another call's
    # session changes nothing
    store = app.services.store
    client = app.client()
    busy = await client.create_session("phonefake")
    other_client = app.client()
    other = await other_client.create_session("phonefake")
    for created, sid in [(busy, "CA" + "d" * 32), (other, "CA" + "e" * 32)]:
        phone = {"direction": "outbound", "to": "+15550003333", "call_sid": sid}
        await store.update_session(created["session_id"], metadata={"phone": phone})
    await post_status(app, "CA" + "d" * 32, "busy", f"session_id={busy['session_id']}")
    await post_status(app, "CA" + "d" * 32, "failed", f"session_id={other['session_id']}")
    busy_session = await ended(app, busy["session_id"])
    assert busy_session.end_reason == "ERROR"
    assert (await store.get_session(other["session_id"])).status == "active"  # type: ignore[union-attr]
    await client.aclose()
    await other_client.aclose()


# --- an outbound call through the REST API ---------------------------------------------------


async def test_an_outbound_call_is_placed_answered_spoken_and_completed(
    make_app: AppFactory, tmp_path: Path
) -> None:
    from parley.testing.fake_twilio import FakeTwilio

    account, token, operator = "AC" + "1" * 32, "f" * 32, "operator-key-" + "x" * 20
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "phonefake.yaml").write_text(AGENTS["phonefake.yaml"])
    async with FakeTwilio(account, token) as twilio:
        settings = {
            "agents_dir": agents,
            "public_url": PUBLIC,
            "operator_key": operator,
            "twilio_account_sid": account,
            "twilio_auth_token": token,  # webhooks and callbacks are signed
            "twilio_from": "+15559990000",
            "twilio_api_base": twilio.base_url,
        }
        async with make_app(**settings) as app:
            twilio.tunnel = (PUBLIC, app.base_url)
            auth = {"Authorization": f"Bearer {operator}"}
            body = {"to": "+15550001111", "agent": "phonefake"}
            async with httpx.AsyncClient(base_url=app.base_url, headers=auth) as http:
                placed = (await http.post("/v1/calls", json=body)).json()
                unanswered = (await http.post("/v1/calls", json=body)).json()
            call_sid = placed["call_sid"]
            answered = await twilio.answer(call_sid)  # the callee picks up
            stream = ET.fromstring(answered.text).find("./Connect/Stream")
            assert stream is not None
            params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
            url = app.base_url.replace("http", "ws", 1) + urlsplit(stream.attrib["url"]).path
            async with PhonePeer.dial(url, parameters=params, call_id=call_sid) as peer:
                await peer.wait_for(lambda p: p.marks_sent)  # "Hi +15550001111."
                assert (await session_of_call(app, call_sid)).id == placed["session_id"]
                assert (await twilio.send_status(call_sid, "completed")).status_code == 204
                await peer.wait_for(lambda p: p.closed)  # the call is hung up
            done = await ended(app, placed["session_id"])
            assert done.end_reason == "USER_ENDED"
            await twilio.send_status(unanswered["call_sid"], "no-answer")
            never = await ended(app, unanswered["session_id"])
            assert never.end_reason == "ERROR"


async def test_a_worker_at_its_voice_limit_refuses_a_call_with_1013(
    make_app: AppFactory, tmp_path: Path
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "phonefake.yaml").write_text(AGENTS["phonefake.yaml"])
    async with make_app(agents_dir=agents, public_url=PUBLIC, max_voice_connections=1) as app:
        async with await dial(app, TWILIO, "CA" + "f" * 32, "agent=phonefake") as first:
            await first.wait_for(lambda p: p.marks_sent)
            url, _ = await answer_call(app, TWILIO, "CA" + "1" * 32, "agent=phonefake")
            async with websockets.connect(url) as second:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(second.recv(), 10)
            assert second.close_code == 1013
            assert not first.closed
            await first.hang_up()
