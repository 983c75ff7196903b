"""The ``/v1/voice`` WebSocket protocol over a real server and a real ``websockets`` client.

The agents here use the benchmark's fake engines (energy VAD, fixed transcript
"I would like to book a table for two tonight", 100 ms of sine per word) so the
tests are about the protocol; ``test_voice_rates.py`` uses the real engines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from parley.client import ParleyClient
from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import sqlite_url

RECV_TIMEOUT_S = 15.0
AGENTS = {
    "fakevoice.yaml": """
name: fakevoice
brain: rules
greeting: "Hi."
fallback: "Pardon?"
engines: {stt: fake, tts: fake, vad: fake_energy}
rules:
  - intent: reserve
    keywords: [table]
    say: "Sure thing."
  - intent: greet
    keywords: [hello]
    say: "Hello you."
""",
    "llmgreet.yaml": """
name: llmgreet
brain: rules
greeting: llm
engines: {stt: fake, tts: fake, vad: fake_energy}
rules:
  - intent: reserve
    keywords: [table]
    say: "Sure thing."
  - intent: greet
    keywords: [hello]
    say: "Hello you."
""",
}


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    """One store is enough for protocol tests (the lock and channel rules are
    store-independent and covered on both backends elsewhere)."""
    return {"database_url": sqlite_url(tmp_path)}


@pytest.fixture
async def app(make_app: AppFactory, tmp_path: Path) -> AsyncIterator[RunningApp]:
    agents = tmp_path / "agents"
    agents.mkdir()
    for name, text in AGENTS.items():
        (agents / name).write_text(text)
    async with make_app(agents_dir=agents) as running:
        yield running


def tone(seconds: float, rate: int = 16000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (3000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def quiet(seconds: float, rate: int = 16000) -> bytes:
    return b"\x00\x00" * int(rate * seconds)


class Voice:
    """A voice client: keeps every JSON event and audio frame it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.audio: list[bytes] = []

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)

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

    async def heard(self, nbytes: int) -> bytes:
        """Read (keeping events) until at least ``nbytes`` of audio have arrived."""
        while sum(map(len, self.audio)) < nbytes:
            msg = await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT_S)
            if isinstance(msg, bytes):
                self.audio.append(msg)
            else:
                self.events.append(json.loads(msg))
        return b"".join(self.audio)

    async def closed(self) -> int | None:
        """Read until the server closes; the close code."""
        with pytest.raises(ConnectionClosed):
            while True:
                msg = await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT_S)
                if isinstance(msg, str):
                    self.events.append(json.loads(msg))
        return self.ws.close_code  # type: ignore[no-any-return]

    async def speak(self, rate: int = 16000, chunk: int = 640) -> None:
        pcm = quiet(0.3, rate) + tone(0.6, rate) + quiet(0.8, rate)
        for i in range(0, len(pcm), chunk):
            await self.ws.send(pcm[i : i + chunk])

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def url(app: RunningApp) -> str:
    return app.base_url.replace("http", "ws", 1) + "/v1/voice"


async def open_voice(app: RunningApp, **start: Any) -> tuple[Voice, dict[str, Any]]:
    ws = await websockets.connect(url(app))
    voice = Voice(ws)
    await voice.send({"type": "start", "sample_rate": 16000, **start})
    ready = await voice.until("ready")
    return voice, ready


async def channel_is(client: ParleyClient, channel: str) -> None:
    """Wait (bounded) until the server has finished switching the session's channel."""
    for _ in range(250):
        if (await client.get(""))["current_channel"] == channel:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the session never returned to {channel}")


# --- start ------------------------------------------------------------------------------


async def test_start_creates_a_session_and_speaks_the_greeting(app: RunningApp) -> None:
    voice, ready = await open_voice(app, agent="fakevoice")
    assert set(ready) >= {"session_id", "session_token", "resume_token", "expires_at"}
    assert (ready["input_sample_rate"], ready["output_sample_rate"]) == (16000, 16000)
    await voice.until("done")
    assert sum(map(len, voice.audio)) == 3200  # "Hi.": 100 ms at 16 kHz
    await voice.speak()
    final = await voice.until("transcript_final")
    assert "table" in final["text"]
    await voice.until("done")
    assert voice.types().count("assistant_text") >= 3 and "turn_end" in voice.types()
    await voice.ws.close()


@pytest.mark.parametrize(
    ("first", "code"),
    [
        (b"\x00\x01", "bad_message"),
        ("not json", "bad_message"),
        ({"type": "hello"}, "bad_message"),
        ({"type": "start", "agent": "fakevoice", "sample_rate": 1000}, "bad_message"),
        ({"type": "start", "agent": "fakevoice", "sample_rate": "16000"}, "bad_message"),
        ({"type": "start", "agent": "fakevoice", "output_sample_rate": 96000}, "bad_message"),
        ({"type": "start", "agent": "fakevoice", "mode": "walkie_talkie"}, "bad_message"),
        ({"type": "start", "agent": "fakevoice", "template_vars": "name=Ann"}, "bad_message"),
        ({"type": "start", "agent": "fakevoice", "template_vars": ["Ann"]}, "bad_message"),
        ({"type": "start", "agent": "fakevoice", "template_vars": {"n": "\x00"}}, "bad_message"),
        ({"type": "start", "session_id": "s", "session_token": {"a": 1}}, "bad_message"),
        ({"type": "start", "session_id": 12}, "bad_message"),
        (
            '{"type": "start", "agent": "fakevoice", "x": ' + "[" * 2000 + "]" * 2000 + "}",
            "bad_message",
        ),
        ({"type": "start", "agent": "nobody"}, "agent_not_found"),
        ({"type": "start", "session_id": "nope", "session_token": "x"}, "session_not_found"),
        ({"type": "start", "resume_token": "not-a-token"}, "resume_token_invalid"),
    ],
)
async def test_bad_start_frames_are_refused_with_1008(
    app: RunningApp, first: dict[str, Any] | str | bytes, code: str
) -> None:
    voice = Voice(await websockets.connect(url(app)))
    await voice.send(first)
    assert await voice.closed() == 1008
    assert [(e["type"], e["code"]) for e in voice.events] == [("error", code)]


async def test_start_needs_the_sessions_token(app: RunningApp) -> None:
    client = app.client()
    session = await client.create_session("fakevoice")
    for token, code in [("wrong", "session_not_found"), (None, "unauthorized")]:
        voice = Voice(await websockets.connect(url(app)))
        await voice.send(
            {"type": "start", "session_id": session["session_id"], "session_token": token}
        )
        assert await voice.closed() == 1008
        assert [e.get("code") for e in voice.events] == [code]
    await client.end()
    voice = Voice(await websockets.connect(url(app)))
    await voice.send({"type": "start", **session})
    assert await voice.closed() == 1008
    assert [e.get("code") for e in voice.events] == ["session_ended"]
    await client.aclose()


async def test_resume_token_resumes_the_same_session(app: RunningApp) -> None:
    voice, ready = await open_voice(app, agent="fakevoice")
    await voice.until("done")
    await voice.send({"type": "text", "text": "hello"})
    await voice.until("done")
    await voice.ws.close()
    again, resumed = await open_voice(app, resume_token=ready["resume_token"])
    assert resumed["session_id"] == ready["session_id"]
    await again.send({"type": "text", "text": "a table please"})
    await again.until("done")
    await again.ws.close()
    client = app.client()
    client.session = {"session_id": ready["session_id"], "session_token": ready["session_token"]}
    texts = [m["text"] for m in await client.messages()]
    assert texts == ["Hi.", "hello", "Hello you.", "a table please", "Sure thing."]
    await client.aclose()


# --- frames after start ------------------------------------------------------------------


async def test_malformed_frames_get_bad_message_and_the_connection_goes_on(
    app: RunningApp,
) -> None:
    voice, _ = await open_voice(app, agent="fakevoice")
    frames: list[dict[str, Any] | str] = [
        "{not json",
        "[1, 2]",
        '"text"',
        {"type": "teleport"},
        {"state": "down"},
        "[" * 2000 + "]" * 2000,
        '{"a": ' * 2000 + "1" + "}" * 2000,
        {"type": "text", "text": "a\x00b"},
        {"type": "approval", "tool_call_id": "call_1", "approved": "yes"},
    ]
    for frame in frames:
        await voice.send(frame)
        error = await voice.until("error")
        assert error["code"] == "bad_message"
    await voice.send({"type": "ping"})
    await voice.until("pong")
    await voice.speak()  # audio still works
    await voice.until("transcript_final")
    await voice.ws.close()


async def test_odd_length_binary_frames_are_realigned(app: RunningApp) -> None:
    voice, _ = await open_voice(app, agent="fakevoice")
    await voice.until("done")  # the greeting
    pcm = quiet(0.3) + tone(0.6) + quiet(0.8)
    sizes = [641, 639, 1, 333, 2047]
    i = 0
    for n in range(len(pcm)):
        size = sizes[n % len(sizes)]
        if i >= len(pcm):
            break
        await voice.ws.send(pcm[i : i + size])
        i += size
    await voice.until("vad", state="speech_started")
    await voice.until("transcript_final")
    await voice.until("done")
    await voice.ws.close()


@pytest.mark.parametrize("frame", [b"\x00" * (256 * 1024 + 2), "x" * (256 * 1024 + 1)])
async def test_a_frame_over_the_limit_closes_with_1009(app: RunningApp, frame: Any) -> None:
    voice, _ = await open_voice(app, agent="fakevoice")
    await voice.send(frame)
    assert await voice.closed() == 1009


async def test_end_ends_the_session(app: RunningApp) -> None:
    voice, ready = await open_voice(app, agent="fakevoice")
    await voice.send({"type": "end"})
    ended = await voice.until("session_ended")
    assert ended["reason"] == "USER_ENDED"
    await voice.closed()
    assert voice.types().count("session_ended") == 1
    client = app.client()
    client.session = ready
    state = await client.get("")
    assert (state["status"], state["end_reason"]) == ("ended", "USER_ENDED")
    await client.aclose()


async def test_http_end_while_connected_reaches_the_socket(app: RunningApp) -> None:
    client = app.client()
    session = await client.create_session("fakevoice")
    voice, _ = await open_voice(app, **session)
    await voice.until("done")
    await client.end()
    ended = await voice.until("session_ended")
    assert ended["reason"] == "USER_ENDED"
    await voice.closed()
    await client.aclose()


@pytest.mark.parametrize(("rate", "frame_bytes"), [(8000, 320), (48000, 1920)])
async def test_output_sample_rate_is_honoured(app: RunningApp, rate: int, frame_bytes: int) -> None:
    voice, ready = await open_voice(app, agent="fakevoice", output_sample_rate=rate)
    assert ready["output_sample_rate"] == rate
    await voice.until("done")
    sizes = {len(a) for a in voice.audio}
    # whole samples; batches of 20 ms frames, never more than the 200 ms lead at once
    assert max(sizes) <= 10 * frame_bytes and all(s % 2 == 0 for s in sizes)
    total = sum(map(len, voice.audio)) / 2 / rate
    assert total == pytest.approx(0.1, abs=0.01)  # "Hi." is 100 ms at any rate
    await voice.ws.close()


@pytest.mark.parametrize("rate", [8000, 48000])
async def test_other_input_rates_are_resampled(app: RunningApp, rate: int) -> None:
    voice, ready = await open_voice(app, agent="fakevoice", sample_rate=rate)
    assert ready["input_sample_rate"] == rate
    await voice.until("done")
    await voice.speak(rate, chunk=rate // 50 * 2)
    started = await voice.until("vad", state="speech_started")
    assert started
    await voice.until("transcript_final")
    await voice.until("done")
    await voice.ws.close()


# --- greetings ---------------------------------------------------------------------------


async def test_static_greeting_is_spoken_once(app: RunningApp) -> None:
    client = app.client()
    session = await client.create_session("fakevoice")
    first, _ = await open_voice(app, **session)
    await first.until("done")
    assert first.audio  # the greeting was spoken
    await first.ws.close()
    await channel_is(client, "chat")
    second, _ = await open_voice(app, **session)
    await second.send({"type": "text", "text": "hello"})
    await second.until("done")
    starts = [e for e in second.events if e["type"] == "assistant_text" and e["status"] == "start"]
    assert len(starts) == 1 and "interrupted" not in second.types()
    await second.ws.close()
    assert [m["text"] for m in await client.messages()] == ["Hi.", "hello", "Hello you."]
    await client.aclose()


async def test_llm_greeting_runs_once(app: RunningApp) -> None:
    voice, ready = await open_voice(app, agent="llmgreet")
    await voice.until("done")
    await voice.ws.close()
    client = app.client()
    client.session = ready
    await channel_is(client, "chat")
    again, _ = await open_voice(
        app, session_id=ready["session_id"], session_token=ready["session_token"]
    )
    await again.send({"type": "text", "text": "a table"})
    await again.until("done")
    assert "error" not in again.types()
    await again.ws.close()
    history = [(m["role"], m["text"]) for m in await client.messages()]
    assert history == [
        ("assistant", "Hello you."),
        ("user", "a table"),
        ("assistant", "Sure thing."),
    ]
    await client.aclose()


async def test_a_worker_at_capacity_refuses_new_voice_connections(
    make_app: AppFactory, tmp_path: Path
) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    for name, text in AGENTS.items():
        (agents / name).write_text(text)
    async with make_app(agents_dir=agents, max_voice_connections=1) as app:
        capacity = app.services.voice_capacity
        first, _ = await open_voice(app, agent="fakevoice")
        second = Voice(await websockets.connect(url(app)))
        error = await second.until("error")
        assert error["code"] == "server_busy" and "1 voice connections" in error["message"]
        assert await second.closed() == 1013  # "try again later"
        assert capacity.open == 1
        await first.send({"type": "end"})
        await first.closed()
        for _ in range(250):  # the handler finishes just after the close handshake
            if capacity.open == 0:
                break
            await asyncio.sleep(0.02)
        assert capacity.open == 0
        third, ready = await open_voice(app, agent="fakevoice")  # room again
        assert ready["session_id"]
        await third.ws.close()
