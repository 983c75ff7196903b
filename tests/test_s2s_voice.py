"""``brain: realtime`` through ``/v1/voice``: the whole app on a real socket, a real
``websockets`` caller, and the local fake Gemini Live / OpenAI Realtime servers.

The caller speaks espeak speech; the fakes' "server VAD" ends a caller turn after
``bytes_per_turn`` bytes of audio (set to the utterance's length) and answer with the
next scripted ``Reply``. Everything in between is Parley as it runs in production:
``voice_ws`` → ``S2SVoiceSession`` → ``GeminiLive`` / ``OpenAIRealtime`` → the fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from parley.channels.live_decision import ACK_TIMEOUT_S, decide_in_live_voice
from parley.client import ParleyClient, SseEvent
from parley.testing import FakeClock
from parley.testing.fake_gemini_live import FakeGeminiLive
from parley.testing.fake_openai_realtime import FakeOpenAIRealtime
from parley.testing.s2s_script import FakeServerBase, Reply
from parley.testing.speech import pad_silence, speak_pcm16k
from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import postgres_url, redis_prefix, redis_url, sqlite_url

RECV_TIMEOUT_S = 15.0
OPERATOR_KEY = "operator-key-for-tests-0123456789"
CHUNK = 640  # 20 ms of 16 kHz PCM16
TURN_BYTES = 48_000  # every caller utterance here: 1.5 s of 16 kHz PCM16


def utterance(text: str) -> bytes:
    """``text`` spoken by espeak, padded with silence (or cut) to exactly 1.5 s."""
    pcm = pad_silence(speak_pcm16k(text), after_s=1.5)
    return pcm[:TURN_BYTES]


async def until_stored(
    app: RunningApp, session_id: str, done: Callable[[list[tuple[str, str, bool]]], bool]
) -> list[tuple[str, str, bool]]:
    """Poll the store (bounded) until ``done(messages)``; the server writes in the
    background, this only waits for it."""
    for _ in range(500):
        stored = await messages(app, session_id)
        if done(stored):
            return stored
        await asyncio.sleep(0.01)
    raise AssertionError(f"never stored: {await messages(app, session_id)}")


def agent_yaml(name: str, engine: str) -> str:
    return f"""
name: {name}
brain: realtime
engines: {{s2s: {engine}, stt: fake, tts: espeak, vad: fake_energy}}
instructions: "You are the booking assistant of Bistro."
realtime:
  voice: Puck
  compression: {{trigger_tokens: 20000, target_tokens: 8000}}
tools:
  - name: book_table
    requires_approval: true
    approval_prompt: "Book a table for {{party_size}} under {{name}}?"
"""


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


class Caller:
    """A voice client that keeps every JSON event and every audio frame it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.audio: list[bytes] = []

    async def send(self, frame: dict[str, Any] | bytes) -> None:
        await self.ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    async def speak(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), CHUNK):
            await self.ws.send(pcm[i : i + CHUNK])

    async def until(self, kind: str, **fields: Any) -> dict[str, Any]:
        while True:
            msg = await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT_S)
            if isinstance(msg, bytes):
                self.audio.append(msg)
                continue
            event: dict[str, Any] = json.loads(msg)
            self.events.append(event)
            if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                return event

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


async def open_caller(app: RunningApp, agent: str, **start: Any) -> tuple[Caller, str]:
    url = app.base_url.replace("http", "ws", 1) + "/v1/voice"
    caller = Caller(await websockets.connect(url))
    await caller.send({"type": "start", "agent": agent, "sample_rate": 16000, **start})
    ready = await caller.until("ready")
    return caller, str(ready["session_id"])


async def until_received(fake: FakeServerBase, size: int) -> None:
    """Poll (bounded) until the fake has received ``size`` bytes of caller audio; fails
    if it gets more, or if bytes were lost."""
    for _ in range(500):
        if fake.audio_bytes >= size:
            break
        await asyncio.sleep(0.01)
    assert fake.audio_bytes == size


async def collect(events: AsyncIterator[SseEvent]) -> list[SseEvent]:
    return [e async for e in events]


async def until_detached(app: RunningApp, session_id: str) -> None:
    """Poll (bounded) until no live connection holds the session."""
    for _ in range(500):
        if await app.services.lifecycle.current_channel(session_id) == "chat":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the voice connection never let the session go")


async def collect_wires(wires: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [w async for w in wires]


def fields(event: SseEvent) -> dict[str, Any]:
    return {k: v for k, v in event.data.items() if k != "type"}


async def messages(app: RunningApp, session_id: str) -> list[tuple[str, str, bool]]:
    stored = await app.services.store.list_messages(session_id)
    return [(m.role, m.text, m.interrupted) for m in stored]


@pytest.fixture
async def gemini_app(make_app: AppFactory, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``start(script, **fake_options)`` → (app, fake): the fake Gemini and the app."""
    stack: list[Any] = []

    async def start(fake: FakeServerBase, engine: str, **options: Any) -> RunningApp:
        agents = tmp_path / "agents"
        agents.mkdir(exist_ok=True)
        (agents / "rt.yaml").write_text(agent_yaml("rt", engine))
        fake_cm = fake.running()
        await fake_cm.__aenter__()
        stack.append(fake_cm)
        keys = (
            {"gemini_api_key": "test-key", "gemini_base_url": fake.base_url}
            if engine == "gemini_live"
            else {"openai_api_key": "test-key", "openai_base_url": fake.base_url + "/v1"}
        )
        app_cm = make_app(agents_dir=agents, **keys, **options)
        app = await app_cm.__aenter__()
        stack.append(app_cm)
        return app  # type: ignore[no-any-return]

    yield start
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)


async def test_gemini_spoken_turn_is_answered_and_stored(
    gemini_app: Callable[..., Any], speak_pcm16k: Callable[..., bytes]
) -> None:
    speech = speak_pcm16k("a table for two tonight")
    fake = FakeGeminiLive(
        [Reply(heard="A table for two tonight.", says="Sure, for two tonight.", chunks=4)],
        bytes_per_turn=len(speech),
    )
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    await caller.speak(speech)
    final = await caller.until("transcript_final")
    assert final["text"] == "A table for two tonight."
    await caller.until("done")
    text = "".join(e["text"] for e in caller.of("assistant_text") if e["status"] == "chunk")
    assert text == "Sure, for two tonight."
    assert next(e["status"] for e in caller.of("assistant_text")) == "start"
    # 4 chunks of 20 ms at 24 kHz, resampled to the caller's 16 kHz: about 80 ms
    assert abs(sum(map(len, caller.audio)) - 4 * 640) <= 64
    assert (await messages(app, session_id)) == [
        ("user", "A table for two tonight.", False),
        ("assistant", "Sure, for two tonight.", False),
    ]
    setup = fake.connections[0].setup
    assert setup["contextWindowCompression"] == {
        "slidingWindow": {"targetTokens": 8000},
        "triggerTokens": 20000,
    }
    assert fake.connections[0].audio_bytes == len(speech)  # every byte the caller said
    declared = setup["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declared] == ["book_table"]
    await caller.ws.close()


async def test_openai_barge_in_cuts_the_answer_to_what_was_heard(
    gemini_app: Callable[..., Any],
) -> None:
    """The client reports 100 ms of the 400 ms answer played (virtual time stands
    still) when the caller speaks again: the client is told ``interrupted``, OpenAI
    gets ``conversation.item.truncate`` at 100 ms, and the stored answer keeps the
    quarter of its words that was heard."""
    words = " ".join(f"w{i}" for i in range(1, 21))
    up_bytes = TURN_BYTES * 3 // 2 - 2_000  # the caller's audio on the 24 kHz wire
    fake = FakeOpenAIRealtime(
        [
            Reply(heard="Tell me the menu.", says=words, chunks=20),
            Reply(heard="Stop, thanks.", says="Okay.", chunks=2),
        ],
        bytes_per_turn=up_bytes,
    )
    clock = FakeClock()
    app = await gemini_app(fake, "openai_realtime", clock=clock)
    caller, session_id = await open_caller(app, "rt")
    await caller.speak(utterance("tell me the menu"))
    await until_stored(app, session_id, lambda m: len(m) == 2)
    await caller.until("assistant_text", status="start")
    await clock.run_for(0.3)  # the pump sends on; the client reports its own position
    await caller.send({"type": "played", "ms": 100})
    await caller.speak(utterance("stop thanks"))
    await caller.until("interrupted")
    stored = await until_stored(app, session_id, lambda m: len(m) == 4 and m[1][2])
    assert stored == [
        ("user", "Tell me the menu.", False),
        ("assistant", "w1 w2 w3 w4 w5", True),
        ("user", "Stop, thanks.", False),
        ("assistant", "Okay.", False),
    ]
    truncate = fake.connections[0].truncates[0]
    assert (truncate["audio_end_ms"], truncate["content_index"]) == (100, 0)
    assert truncate["item_id"].startswith("item_")
    await caller.ws.close()


async def test_gemini_tool_call_waits_for_a_spoken_yes_and_the_result_goes_back(
    gemini_app: Callable[..., Any],
) -> None:
    booking = {"name": "Ann", "date": "2031-06-03", "time": "19:00", "party_size": 2}
    fake = FakeGeminiLive(
        [
            Reply(heard="Book a table for two.", tool_call=("book_table", booking)),
            Reply(heard="Yes.", says="", chunks=1),
            Reply(says="You are booked, Ann.", chunks=3),
        ],
        bytes_per_turn=TURN_BYTES,
    )
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    await caller.speak(utterance("book a table for two"))
    asked = await caller.until("approval_requested")
    assert asked["prompt"] == "Book a table for 2 under Ann?"
    await caller.speak(utterance("yes"))
    resolved = await caller.until("approval_resolved")
    assert (resolved["status"], resolved["decided_by"]) == ("approved", "voice")
    completed = await caller.until("tool_call_completed")
    assert completed["tool_call_id"] == asked["tool_call_id"]
    stored = await until_stored(app, session_id, lambda m: m[-1][1] == "You are booked, Ann.")
    assert [m[0] for m in stored] == ["user", "assistant", "tool", "assistant"]
    result = fake.connections[0].tool_results[0]
    assert result["id"] == asked["tool_call_id"] and result["name"] == "book_table"
    assert result["response"]["status"] == completed["status"]
    approval = await app.services.store.get_approval(session_id, asked["tool_call_id"])
    assert approval is not None and approval.decided_by == "voice"
    await caller.ws.close()


def http_client(app: RunningApp, session_id: str, token: str) -> ParleyClient:
    """A chat API client on the voice session's session (its token, or the operator key)."""
    client = app.client()
    client.session = {"session_id": session_id, "session_token": token}
    return client


def booking_script() -> list[Reply]:
    booking = {"name": "Ann", "date": "2031-06-03", "time": "19:00", "party_size": 2}
    return [
        Reply(heard="Book a table for two.", tool_call=("book_table", booking)),
        Reply(says="You are booked, Ann.", chunks=3),
    ]


async def test_gemini_approval_decided_over_http_lands_in_the_live_voice_session(
    gemini_app: Callable[..., Any],
) -> None:
    """A click in another tab (``POST …/approvals/{id}``) while the caller is on the
    line: the tool runs once, its result goes up the live upstream (no text-turn
    connection is opened), and both the HTTP client and the caller see the turn."""
    fake = FakeGeminiLive(booking_script(), bytes_per_turn=TURN_BYTES)
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    token = str(caller.of("ready")[0]["session_token"])
    await caller.speak(utterance("book a table for two"))
    asked = await caller.until("approval_requested")
    call_id = asked["tool_call_id"]
    client = http_client(app, session_id, token)
    answer = [e async for e in client.decide(call_id, True)]
    kinds = [e.event for e in answer]
    assert kinds[0] == "approval_resolved" and kinds[-1] == "turn_end"
    assert fields(answer[0]) == {
        "tool_call_id": call_id,
        "status": "approved",
        "decided_by": "user",
    }
    assert "tool_call_completed" in kinds
    resolved = await caller.until("approval_resolved")
    assert (resolved["status"], resolved["decided_by"]) == ("approved", "user")
    completed = await caller.until("tool_call_completed")
    assert completed["tool_call_id"] == call_id
    stored = await until_stored(app, session_id, lambda m: "booked" in m[-1][1])
    assert [m[0] for m in stored] == ["user", "assistant", "tool", "assistant"]
    assert len(fake.connections) == 1  # no text-turn upstream beside the live one
    results = fake.connections[0].tool_results
    assert [r["id"] for r in results] == [call_id]
    assert results[0]["response"]["status"] == completed["status"]
    assert len(caller.of("approval_resolved")) == 1
    await client.aclose()
    await caller.ws.close()


async def test_a_second_decision_over_http_hears_the_first_one(
    gemini_app: Callable[..., Any],
) -> None:
    """The operator denies from the console; the user's later approval loses: it gets
    ``approval_resolved`` with the winning status and ``turn_end``, nothing else, and
    the model hears exactly one denial."""
    fake = FakeGeminiLive(
        [booking_script()[0], Reply(says="All right, I did not book it.", chunks=2)],
        bytes_per_turn=TURN_BYTES,
    )
    app = await gemini_app(fake, "gemini_live", operator_key=OPERATOR_KEY)
    caller, session_id = await open_caller(app, "rt")
    token = str(caller.of("ready")[0]["session_token"])
    await caller.speak(utterance("book a table for two"))
    call_id = (await caller.until("approval_requested"))["tool_call_id"]
    operator = http_client(app, session_id, OPERATOR_KEY)
    first = [e async for e in operator.decide(call_id, False)]
    assert first[0].data["decided_by"] == "operator"
    assert (await caller.until("approval_resolved"))["decided_by"] == "operator"
    await until_stored(app, session_id, lambda m: "did not book" in m[-1][1])
    user = http_client(app, session_id, token)
    second = [(e.event, fields(e)) for e in await collect(user.decide(call_id, True))]
    assert second == [
        (
            "approval_resolved",
            {"tool_call_id": call_id, "status": "denied", "decided_by": "operator"},
        ),
        ("turn_end", {"status": "completed", "session_status": "active"}),
    ]
    results = fake.connections[0].tool_results
    assert [(r["id"], r["response"]["status"]) for r in results] == [(call_id, "denied")]
    approval = await app.services.store.get_approval(session_id, call_id)
    assert approval is not None and approval.decided_by == "operator"
    await operator.aclose()
    await user.aclose()
    await caller.ws.close()


async def test_a_decision_on_another_worker_reaches_the_voice_session(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """Two workers on one PostgreSQL and Redis: the caller is on worker A, the click
    reaches worker B; the decision goes over the session's pub/sub channel, A's voice
    session settles it and sends the result up, and B's HTTP answer streams the turn."""
    fake = FakeGeminiLive(booking_script(), bytes_per_turn=TURN_BYTES)
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "rt.yaml").write_text(agent_yaml("rt", "gemini_live"))
    async with fake.running(), postgres_url() as db, redis_prefix() as prefix:
        shared = {
            "database_url": db,
            "redis_url": redis_url(),
            "redis_prefix": prefix,
            "agents_dir": agents,
            "gemini_api_key": "test-key",
            "gemini_base_url": fake.base_url,
        }
        async with (
            make_app(data_dir=tmp_path / "a", **shared) as worker_a,
            make_app(data_dir=tmp_path / "b", **shared) as worker_b,
        ):
            caller, session_id = await open_caller(worker_a, "rt")
            token = str(caller.of("ready")[0]["session_token"])
            await caller.speak(utterance("book a table for two"))
            call_id = (await caller.until("approval_requested"))["tool_call_id"]
            client = http_client(worker_b, session_id, token)
            answer = [e.event for e in await collect(client.decide(call_id, True))]
            assert answer[0] == "approval_resolved" and answer[-1] == "turn_end"
            assert "tool_call_completed" in answer
            await caller.until("tool_call_completed")
            await until_stored(worker_a, session_id, lambda m: "booked" in m[-1][1])
            assert [r["id"] for r in fake.connections[0].tool_results] == [call_id]
            assert len(fake.connections) == 1
            await client.aclose()
            await caller.ws.close()


async def test_a_decision_no_voice_session_takes_is_recorded_for_the_next_turn(
    gemini_app: Callable[..., Any],
) -> None:
    """The voice connection left between the HTTP side's channel check and its published
    decision: after ``ACK_TIMEOUT_S`` (virtual) the answer says the decision is recorded,
    and the session's next turn (the caller back on the line) runs the tool."""
    fake = FakeGeminiLive(
        [*booking_script()[:1], Reply(heard="Hello again.", says="Hi.", chunks=1)],
        bytes_per_turn=TURN_BYTES,
    )
    clock = FakeClock()
    app = await gemini_app(fake, "gemini_live", clock=clock)
    caller, session_id = await open_caller(app, "rt")
    token = str(caller.of("ready")[0]["session_token"])
    await caller.speak(utterance("book a table for two"))
    call_id = (await caller.until("approval_requested"))["tool_call_id"]
    await caller.ws.close()
    await until_detached(app, session_id)
    wires = await decide_in_live_voice(app.services, session_id, call_id, True, "user", None)
    answer = asyncio.ensure_future(collect_wires(wires))
    await clock.run_for(ACK_TIMEOUT_S - 0.1)
    assert not answer.done()
    await clock.run_for(0.2)
    assert [(w["type"], w.get("code")) for w in await answer] == [
        ("approval_resolved", None),
        ("error", "session_busy"),
        ("turn_end", None),
    ]
    back, _ = await open_caller(app, "rt", session_id=session_id, session_token=token)
    await back.speak(utterance("hello again"))
    completed = await back.until("tool_call_completed")
    assert completed["tool_call_id"] == call_id
    await back.ws.close()


async def test_gemini_go_away_mid_answer_resumes_without_losing_caller_audio(
    gemini_app: Callable[..., Any],
) -> None:
    fake = FakeGeminiLive(
        [
            Reply(heard="First.", says="one two three four five six", chunks=6, go_away_after=1),
            Reply(heard="Second.", says="Still here.", chunks=2),
        ],
        bytes_per_turn=TURN_BYTES,
        keep_reading_after_go_away=True,
    )
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    first, more = utterance("first"), utterance("second")
    await caller.speak(first + more[: TURN_BYTES // 2])  # goes on talking through the swap
    await until_stored(app, session_id, lambda m: len(m) == 2)
    await caller.speak(more[TURN_BYTES // 2 :] + more)
    stored = await until_stored(app, session_id, lambda m: len(m) == 4)
    assert stored == [
        ("user", "First.", False),
        ("assistant", "one two three four five six", False),
        ("user", "Second.", False),
        ("assistant", "Still here.", False),
    ]
    assert fake.resumed_with == ["handle-1"]
    assert len(fake.connections) == 2
    await until_received(fake, 3 * TURN_BYTES)  # every byte the caller sent, across the swap
    await caller.ws.close()


async def test_gemini_refused_resumption_is_rebuilt_from_the_history(
    gemini_app: Callable[..., Any],
) -> None:
    fake = FakeGeminiLive(
        [
            Reply(heard="First.", says="Hello there.", chunks=2),
            Reply(heard="Again.", says="one two three", chunks=3, go_away_after=0),
            Reply(heard="Third.", says="Back again.", chunks=2),
        ],
        bytes_per_turn=TURN_BYTES,
        accept_handles=False,
    )
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    await caller.speak(utterance("first"))
    await until_stored(app, session_id, lambda m: len(m) == 2)
    await caller.speak(utterance("again"))
    await until_stored(app, session_id, lambda m: len(m) == 4)
    await caller.speak(utterance("third"))
    stored = await until_stored(app, session_id, lambda m: len(m) == 6)
    assert stored[-1] == ("assistant", "Back again.", False)
    # the original, the refused resumption, the rebuilt session
    assert len(fake.connections) == 3 and fake.resumed_with == []
    rebuilt = fake.connections[2]
    assert "sessionResumption" not in rebuilt.setup or not rebuilt.setup["sessionResumption"].get(
        "handle"
    )
    assert rebuilt.seeded[:3] == [("user", "First."), ("model", "Hello there."), ("user", "Again.")]
    await until_received(fake, 3 * TURN_BYTES)
    await caller.ws.close()


async def test_an_upstream_that_cannot_be_reached_ends_the_session_with_error(
    gemini_app: Callable[..., Any],
) -> None:
    fake = FakeGeminiLive([])
    fake.refuse = [401]
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    error = await caller.until("error")
    assert error["code"] == "upstream_failed"
    assert "401" not in error["message"]  # the provider's text stays in the server log
    ended = await caller.until("session_ended")
    assert ended["reason"] == "ERROR"
    session = await app.services.store.get_session(session_id)
    assert session is not None and session.end_reason == "ERROR"


async def test_typed_text_in_a_voice_session_goes_to_the_same_model(
    gemini_app: Callable[..., Any],
) -> None:
    fake = FakeGeminiLive([Reply(says="We open at noon.", chunks=2)])
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    await caller.send({"type": "text", "text": "When do you open?"})
    await caller.until("done")
    assert fake.connections[0].texts == ["When do you open?"]
    assert await until_stored(app, session_id, lambda m: len(m) == 2) == [
        ("user", "When do you open?", False),
        ("assistant", "We open at noon.", False),
    ]
    await caller.ws.close()


async def test_chat_without_a_voice_session_is_answered_over_a_text_turn(
    gemini_app: Callable[..., Any],
) -> None:
    """Plain chat on a realtime agent: one short upstream session per model call,
    seeded with the history, the user's text sent up, the transcript streamed back."""
    fake = FakeGeminiLive(
        [Reply(says="Hi, how can I help?", chunks=2), Reply(says="At noon.", chunks=1)]
    )
    app = await gemini_app(fake, "gemini_live")
    client = app.client()
    await client.create_session("rt")
    first = [e async for e in client.send("Hello")]
    assert any(e.event == "assistant_message" for e in first)
    second = [e async for e in client.send("When do you open?")]
    said = [e.data["text"] for e in second if e.event == "assistant_message"]
    assert said == ["At noon."]
    assert [c.texts for c in fake.connections] == [["Hello"], ["When do you open?"]]
    assert fake.connections[1].seeded == [("user", "Hello"), ("model", "Hi, how can I help?")]
    await client.aclose()


async def test_openai_session_cap_is_rebuilt_from_the_history(
    gemini_app: Callable[..., Any],
) -> None:
    """OpenAI's 60-minute cap (``session_expired`` mid-answer, then the socket closes):
    a new session seeded with the history carries on; no caller audio is lost."""
    up_bytes = TURN_BYTES * 3 // 2 - 2_000
    fake = FakeOpenAIRealtime(
        [
            Reply(heard="First.", says="Hello there.", chunks=2),
            Reply(heard="Again.", says="one two three", chunks=3, go_away_after=0),
            Reply(heard="Third.", says="Back again.", chunks=2),
        ],
        bytes_per_turn=up_bytes,
    )
    app = await gemini_app(fake, "openai_realtime")
    caller, session_id = await open_caller(app, "rt")
    await caller.speak(utterance("first"))
    await caller.until("done")  # played out: the next turn is no barge-in
    await caller.speak(utterance("again"))
    await caller.until("done")  # the expired answer ends (abandoned) when its socket closes
    await caller.speak(utterance("third"))
    stored = await until_stored(app, session_id, lambda m: len(m) == 6)
    assert stored == [
        ("user", "First.", False),
        ("assistant", "Hello there.", False),
        ("user", "Again.", False),
        ("assistant", "one", True),  # what arrived before the session expired
        ("user", "Third.", False),
        ("assistant", "Back again.", False),
    ]
    assert len(fake.connections) == 2
    assert fake.connections[1].seeded[:3] == [
        ("user", "First."),
        ("assistant", "Hello there."),
        ("user", "Again."),
    ]
    await caller.ws.close()


@pytest.mark.parametrize("complete_after_interrupt", [True, False])
async def test_gemini_interrupted_answer_is_stored_cut_and_the_next_one_plays(
    gemini_app: Callable[..., Any], complete_after_interrupt: bool
) -> None:
    """``serverContent.interrupted`` clears the caller's playback at once and the answer is
    stored as heard, marked interrupted; the next answer plays whether or not the provider
    closed the interrupted one with ``turnComplete``."""
    words = " ".join(f"w{i}" for i in range(1, 21))
    fake = FakeGeminiLive(
        [
            Reply(heard="Tell me.", says=words, chunks=20, interrupt_after=4),
            Reply(heard="Next.", says="Fine.", chunks=2),
        ],
        bytes_per_turn=TURN_BYTES,
        complete_after_interrupt=complete_after_interrupt,
    )
    app = await gemini_app(fake, "gemini_live")
    caller, session_id = await open_caller(app, "rt")
    await caller.speak(utterance("tell me"))
    await caller.until("interrupted")
    await caller.speak(utterance("next"))
    stored = await until_stored(app, session_id, lambda m: len(m) == 4)
    assert stored[0] == ("user", "Tell me.", False)
    role, cut, interrupted = stored[1]
    assert role == "assistant" and interrupted and words.startswith(cut)
    assert stored[2:] == [("user", "Next.", False), ("assistant", "Fine.", False)]
    await caller.until("done")
    assert caller.of("assistant_text")[-1]["status"] == "end"
    if not any(e.get("text") == "Next." for e in caller.of("transcript_final")):
        await caller.until("transcript_final", text="Next.")
    # Gemini reports no speech start: its barge-in signal stands for one
    states = [e["state"] if e["type"] == "vad" else e["type"] for e in caller.events]
    states = [s for s in states if s in ("speech_started", "speech_stopped", "interrupted")]
    assert states == [
        "speech_started",
        "speech_stopped",
        "speech_started",
        "interrupted",
        "speech_stopped",
    ]
    await caller.ws.close()


@pytest.mark.parametrize("engine", ["gemini_live", "openai_realtime"])
async def test_a_realtime_session_opens_no_cascaded_stt_or_vad_stream(
    gemini_app: Callable[..., Any], speak_pcm16k: Callable[..., bytes], engine: str
) -> None:
    """The provider hears the caller: the agent's STT and VAD engines (counting fakes,
    the ones the hub hands every voice connection) never open a stream."""
    speech = speak_pcm16k("a table for two tonight")
    wire = len(speech) * 3 // 2 - 2_000 if engine == "openai_realtime" else len(speech)
    script = [Reply(heard="A table for two tonight.", says="Sure.", chunks=2)]
    fake = (
        FakeGeminiLive(script, bytes_per_turn=wire)
        if engine == "gemini_live"
        else FakeOpenAIRealtime(script, bytes_per_turn=wire)
    )
    app = await gemini_app(fake, engine)
    engines = await app.services.engine_hub.engines_for("rt")
    caller, _ = await open_caller(app, "rt")
    await caller.speak(speech)
    await caller.until("done")
    assert (engines.stt.opened, engines.vad.opened) == (0, 0)
    await caller.ws.close()


@pytest.mark.parametrize("engine", ["gemini_live", "openai_realtime"])
async def test_the_caller_gets_vad_events_around_a_spoken_turn(
    gemini_app: Callable[..., Any], speak_pcm16k: Callable[..., bytes], engine: str
) -> None:
    """``vad speech_started`` then ``speech_stopped``, once each, before the final
    transcript, as the cascaded loop sends them: from OpenAI's
    ``input_audio_buffer.speech_started/stopped``, from Gemini's input transcription."""
    speech = speak_pcm16k("a table for two tonight")
    wire = len(speech) * 3 // 2 - 2_000 if engine == "openai_realtime" else len(speech)
    script = [Reply(heard="A table for two tonight.", says="Sure.", chunks=2)]
    fake = (
        FakeGeminiLive(script, bytes_per_turn=wire)
        if engine == "gemini_live"
        else FakeOpenAIRealtime(script, bytes_per_turn=wire)
    )
    app = await gemini_app(fake, engine)
    caller, _ = await open_caller(app, "rt")
    await caller.speak(speech)
    await caller.until("done")
    kinds = [
        e.get("state") if e["type"] == "vad" else e["type"]
        for e in caller.events
        if e["type"] in ("vad", "transcript_final")
    ]
    assert kinds == ["speech_started", "speech_stopped", "transcript_final"]
    await caller.ws.close()
