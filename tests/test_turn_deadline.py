"""The wall-clock deadline of a pause: a client that stops sending audio after the
user spoke (audio gated on a button, a phone leg whose media pauses) still gets its
turn ended, at the latest ``max_stop_secs`` after the silence began, by the injected
clock. Driven three ways: the state machine directly, a voice session in virtual time,
and a real ``/v1/voice`` WebSocket on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from parley.testing import FakeClock
from parley.testing.voice import ScriptedLLM, ScriptedSTT, voice_harness
from parley.voice.turn_taking import (
    Mode,
    SpeechStopped,
    TurnDetection,
    TurnState,
    TurnTaking,
    TurnTakingConfig,
    UtteranceDiscarded,
    UtteranceEnded,
)
from tests.plugins.apps import AppFactory, RunningApp
from tests.plugins.stores import sqlite_url
from tests.test_voice_ws import Voice, open_voice, quiet, tone

FRAME = 0.02
SPEECH, SILENCE = 0.9, 0.05


def feed(tt: TurnTaking, start: float, secs: float, prob: float) -> float:
    t = start
    for _ in range(round(secs / FRAME)):
        assert tt.on_frame(prob, t, FRAME) == [] or prob == SPEECH
        t = round(t + FRAME, 6)
    return t


# --- the state machine ------------------------------------------------------------------


@pytest.mark.parametrize("detection", [TurnDetection.SMART, TurnDetection.SILENCE])
def test_a_pause_with_no_more_audio_ends_at_its_deadline(detection: TurnDetection) -> None:
    tt = TurnTaking(TurnTakingConfig(turn_detection=detection))
    t = feed(tt, 0.0, 1.0, SPEECH)
    tt.on_partial("a table for", t)  # reads unfinished: smart would wait long
    assert tt.pause_onset is None
    t = feed(tt, t, 0.1, SILENCE)
    assert tt.state is TurnState.STOPPING and tt.pause_onset == pytest.approx(1.0)
    assert tt.pause_deadline_secs == 2.0  # max_stop_secs
    events = tt.on_pause_deadline(1.0, t)
    assert events == [SpeechStopped(at=1.0), UtteranceEnded(0.0, 1.0, 1.0)]
    assert tt.state is TurnState.QUIET and tt.pause_onset is None


def test_the_deadline_of_an_older_pause_is_ignored() -> None:
    tt = TurnTaking(TurnTakingConfig(turn_detection=TurnDetection.SMART))
    t = feed(tt, 0.0, 1.0, SPEECH)
    t = feed(tt, t, 0.1, SILENCE)  # a pause at 1.0 ...
    t = feed(tt, t, 0.5, SPEECH)  # ... the caller went on ...
    assert tt.pause_onset is None
    assert tt.on_pause_deadline(1.0, t) == []  # ... so its deadline means nothing
    t = feed(tt, t, 0.04, SILENCE)  # a new pause at 1.6
    assert tt.on_pause_deadline(1.0, t) == []
    assert tt.state is TurnState.STOPPING
    assert tt.on_pause_deadline(tt.pause_onset or 0.0, t)[-1] == UtteranceEnded(0.0, 1.6, 1.6)


def test_the_deadline_keeps_the_turn_rules() -> None:
    """A blip shorter than ``min_utterance_secs`` is still dropped, not made a turn."""
    tt = TurnTaking(TurnTakingConfig(turn_detection=TurnDetection.SMART, start_secs=0.0))
    t = feed(tt, 0.0, 0.1, SPEECH)
    t = feed(tt, t, 0.04, SILENCE)
    events = tt.on_pause_deadline(0.1, t)
    assert isinstance(events[-1], UtteranceDiscarded) and events[-1].reason == "too_short"


def test_no_deadline_outside_a_hands_free_pause() -> None:
    tt = TurnTaking(TurnTakingConfig(), Mode.PUSH_TO_TALK)
    tt.ptt_down(0.0)
    tt.on_frame(SPEECH, 0.0, FRAME)
    assert tt.pause_onset is None
    assert tt.on_pause_deadline(0.0, 0.5) == []
    assert tt.state is TurnState.SPEAKING


# --- a voice session in virtual time ----------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


async def test_the_session_ends_a_turn_whose_audio_stopped(db: str) -> None:
    stt = ScriptedSTT(["a table for four people"], partial="a table for", partial_after=10)
    async with voice_harness(db, stt=stt, llm=ScriptedLLM(default="Sure.")) as h:
        await h.conn.start()
        await h.mic.speak(1.0)
        silence_from = h.time.monotonic() + FRAME  # the first silent frame arrives then
        await h.mic.silence(0.1)  # ... and then the client sends nothing more
        deadline = silence_from + 2.0
        await h.time.run_for(deadline - h.time.monotonic() - 0.01)
        assert h.transport.count("transcript_final") == 0
        assert [e["state"] for e in h.transport.events("vad")] == ["speech_started"]
        await h.until("transcript_final")
        stopped = [s for s in h.transport.sent if s.kind == "json" and s.data["type"] == "vad"]
        assert stopped[-1].data["state"] == "speech_stopped"
        assert stopped[-1].at == pytest.approx(deadline)
        await h.until("done")
        assert [m.text for m in await h.messages("user")] == ["a table for four people"]
        assert [m.text for m in await h.messages("assistant")] == ["Sure."]


async def test_audio_that_goes_on_cancels_the_deadline(db: str) -> None:
    """A caller who resumes keeps the turn open: the old pause's deadline ends nothing."""
    stt = ScriptedSTT(["a table for four people"], partial="a table for", partial_after=10)
    async with voice_harness(db, stt=stt, llm=ScriptedLLM("Sure.")) as h:
        await h.conn.start()
        await h.mic.speak(1.0)
        await h.mic.silence(1.0)  # a long thinking pause (the partial reads unfinished)
        await h.mic.speak(1.5)  # the old pause's deadline passes while they speak
        assert h.transport.count("transcript_final") == 0
        await h.mic.silence(0.6)
        await h.until("done")
        assert len(await h.messages("user")) == 1


# --- over a real WebSocket, on a fake clock ---------------------------------------------

AGENT = """
name: gated
brain: rules
fallback: "Pardon?"
engines: {stt: fake, tts: fake, vad: fake_energy}
voice: {turn_detection: smart, max_stop_secs: 1.5}
rules:
  - intent: reserve
    keywords: [table]
    say: "Sure thing."
"""


@pytest.fixture
def backend(tmp_path: Path) -> dict[str, Any]:
    return {"database_url": sqlite_url(tmp_path)}


@pytest.fixture
async def gated_app(make_app: AppFactory, tmp_path: Path) -> AsyncIterator[RunningApp]:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "gated.yaml").write_text(AGENT)
    async with make_app(clock=FakeClock(), agents_dir=agents) as running:
        yield running


async def pong(voice: Voice) -> None:
    """Everything sent before has been handled (the server reads in order)."""
    await voice.send({"type": "ping"})
    await voice.until("pong")


async def test_a_client_that_stops_sending_gets_its_turn_ended(gated_app: RunningApp) -> None:
    clock = gated_app.clock
    assert clock is not None
    voice, _ = await open_voice(gated_app, agent="gated")
    pcm = quiet(0.2) + tone(0.6) + quiet(0.1)  # then nothing: the client gated its mic
    for i in range(0, len(pcm), 640):
        await voice.ws.send(pcm[i : i + 640])
    await pong(voice)
    assert [e.get("state") for e in voice.events if e["type"] == "vad"] == ["speech_started"]
    for _ in range(200):  # the deadline's timer is armed from the server's own task
        if 1.5 in clock.sleeps:
            break
        await asyncio.sleep(0.005)
    clock.advance(1.4)
    await pong(voice)
    assert "speech_stopped" not in [e.get("state") for e in voice.events]
    clock.advance(0.1)
    await voice.until("vad", state="speech_stopped")
    clock.advance(1.0)  # the fake recogniser's delay
    final = await voice.until("transcript_final")
    assert final["text"]
    await voice.ws.close()
