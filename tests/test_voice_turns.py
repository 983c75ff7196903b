"""What a voice response says and stores, in virtual time (``parley.testing.voice``):
fillers, spoken approvals, typed text and UI actions, greetings, failing engines and
the latency breakdown on ``done``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.brain.history import INITIAL_TURN_MARKER
from parley.channels.voice_ws import handle_text
from parley.engines.base import EngineError, ProviderError, ToolCallRequest
from parley.testing import FakeClock
from parley.testing.voice import (
    Pause,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    VoiceHarness,
    book_call,
    scripted_agent,
    tokens,
    voice_harness,
)
from parley.voice.io import VoiceOptions
from parley.voice.response import APOLOGY, SLOW_TOOL_FILLER, SLOW_TOOL_SECS
from tests.plugins.stores import sqlite_url


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


async def control(h: VoiceHarness, msg: dict[str, object]) -> bool:
    """A control frame as the browser sends it, through the codec; True for ``end``."""
    return await handle_text(h.conn, json.dumps(msg), h.transport)


# --- tools, fillers, approvals ----------------------------------------------------------


async def test_filler_is_spoken_before_the_tool_and_not_stored(db: str) -> None:
    check = ToolCallRequest(
        "call_check",
        "check_availability",
        {"date": "next wednesday", "time": "19:00", "party_size": 2},
    )
    tts = ToneTTS()
    llm = ScriptedLLM([check], "We have a table.")
    async with voice_harness(db, stt=ScriptedSTT(["a table"]), llm=llm, tts=tts) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.until("done")
        started = h.transport.events("tool_call_started")[0]
        assert started["filler"] == "Let me check."
        assert tts.spoken == ["Let me check.", "We have a table."]
        first = h.transport.audio()[0]
        assert ToneTTS.call_of(first) == 0  # the filler is heard first
        texts = [m.text for m in await h.messages("assistant")]
        assert texts == ["", "We have a table."]


async def test_a_slow_tool_without_a_filler_gets_a_generic_one(db: str) -> None:
    time = FakeClock()

    async def slow_lookup() -> str:
        """Look something up, slowly."""
        await time.sleep(2.5)
        return "found"

    async def quick_lookup() -> str:
        """Look something up, quickly."""
        return "found"

    agent = scripted_agent(tools=["slow_lookup", "quick_lookup"])
    calls = [ToolCallRequest("c1", "quick_lookup", {}), ToolCallRequest("c2", "slow_lookup", {})]
    llm = ScriptedLLM(calls, "Here it is.")
    tts = ToneTTS()
    async with voice_harness(
        db, agent=agent, llm=llm, tts=tts, time=time, tools=[slow_lookup, quick_lookup]
    ) as h:
        await h.conn.start()
        await control(h, {"type": "text", "text": "look it up"})
        started = h.time.monotonic()
        await h.until("done")
        assert tts.spoken == [SLOW_TOOL_FILLER, "Here it is."]
        filler_at = h.transport.first_audio_at()
        assert filler_at - started == pytest.approx(SLOW_TOOL_SECS)
        assert [m.text for m in await h.messages("assistant")] == ["", "Here it is."]


@pytest.mark.parametrize(
    ("answer", "status", "reply"), [("yes", "approved", "Booked."), ("no", "denied", "Not booked.")]
)
async def test_voice_approval(db: str, answer: str, status: str, reply: str) -> None:
    stt = ScriptedSTT(["book it for sam", answer])
    llm = ScriptedLLM([*tokens("I can do that. "), book_call()], reply)
    tts = ToneTTS()
    async with voice_harness(db, stt=stt, llm=llm, tts=tts) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.until("done")
        asked = h.transport.events("approval_requested")[0]
        assert asked["prompt"] == "Book it?" and "Book it?" in tts.spoken
        assert h.transport.events("turn_end")[0]["status"] == "awaiting_approval"
        assert h.conn.input.stt.mode == "yes_no"  # type: ignore[attr-defined]
        await h.mic.utterance(0.4)
        await h.until("done", 2)
        assert stt.utterances[1].mode == "yes_no"
        assert h.conn.input.stt.mode == "default"  # type: ignore[attr-defined]
        resolved = h.transport.events("approval_resolved")[0]
        assert resolved == {
            "type": "approval_resolved",
            "tool_call_id": "call_book",
            "status": status,
            "decided_by": "voice",
        }
        approval = await h.store.get_approval(h.session_id, "call_book")
        assert approval.status == status and approval.decided_by == "voice"
        completed = h.transport.events("tool_call_completed")[0]
        assert completed["status"] == ("ok" if answer == "yes" else "denied")
        assert (await h.messages("assistant"))[-1].text == reply
        assert [m.text for m in await h.messages("user")] == ["book it for sam"]


# --- text, ui actions, greetings --------------------------------------------------------


async def test_typed_text_and_ui_actions_run_turns(db: str) -> None:
    async with voice_harness(db, llm=ScriptedLLM("Hello.", "Risotto is rice.")) as h:
        await h.conn.start()
        await control(h, {"type": "text", "text": "  hello  "})
        await h.until("done")
        action = {"type": "ui_action", "msg": "Tell me about the risotto", "display": "Risotto"}
        await control(h, action)
        await h.until("done", 2)
        users = await h.messages("user")
        assert [(m.text, m.channel) for m in users] == [
            ("hello", "voice"),
            ("Tell me about the risotto", "voice"),
        ]
        assert users[1].blocks == [
            {"type": "ui_action", "msg": "Tell me about the risotto", "display": "Risotto"}
        ]
        assert [m.text for m in await h.messages("assistant")] == ["Hello.", "Risotto is rice."]


@pytest.mark.parametrize(
    "msg",
    [
        {"type": "text", "text": "   "},
        {"type": "text"},
        {"type": "ui_action", "display": "x"},
        {"type": "approval", "tool_call_id": "call_1"},
        {"type": "approval", "tool_call_id": "call_1", "approved": "yes"},
        {"type": "ptt", "state": "sideways"},
        {"type": "ptt", "state": "up"},
        {"type": "played", "ms": -5},
        {"type": "nonsense"},
        {"no": "type"},
    ],
)
async def test_bad_control_messages_get_bad_message(db: str, msg: dict[str, object]) -> None:
    async with voice_harness(db) as h:
        await h.conn.start()
        assert await control(h, msg) is False
        await h.time.run_for(1.0)
        assert [e["code"] for e in h.transport.events("error")] == ["bad_message"]
        assert await h.messages() == []
        assert await control(h, {"type": "ping"}) is False
        assert h.transport.types()[-1] == "pong"


async def test_static_greeting_is_spoken_not_stored(db: str) -> None:
    tts = ToneTTS()
    async with voice_harness(db, tts=tts) as h:
        await h.conn.start(greet="Hello and welcome.")
        await h.until("done")
        assert tts.spoken == ["Hello and welcome."]
        assert len(h.transport.audio()) * 0.02 == pytest.approx(0.3)
        assert await h.messages() == []


async def test_llm_greeting_runs_the_initial_turn(db: str) -> None:
    llm = ScriptedLLM("Welcome to the test.")
    async with voice_harness(db, llm=llm) as h:
        await h.conn.start(initial_turn=True)
        await h.until("done")
        assert llm.calls[0][-1]["content"].startswith(INITIAL_TURN_MARKER)
        assert [(m.role, m.text) for m in await h.messages()] == [
            ("assistant", "Welcome to the test.")
        ]


# --- errors and latency ---------------------------------------------------------------


async def test_failed_speech_recognition_is_an_apology_and_the_session_goes_on(db: str) -> None:
    stt = ScriptedSTT(["second try"])
    stt.fail_next = EngineError("decoder crashed", code="stt_failed")
    tts = ToneTTS()
    async with voice_harness(db, stt=stt, tts=tts, llm=ScriptedLLM("Got it.")) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.until("done")
        assert [e["code"] for e in h.transport.events("error")] == ["stt_failed"]
        assert tts.spoken == [APOLOGY]
        assert await h.messages() == []
        await h.mic.utterance()
        await h.until("done", 2)
        assert [m.text for m in await h.messages()] == ["second try", "Got it."]


async def test_failed_speech_output_is_an_apology_and_the_session_goes_on(db: str) -> None:
    tts = ToneTTS(fail_on="broken")
    llm = ScriptedLLM("Fine here. This is broken. Never said.", "All good.")
    async with voice_harness(db, stt=ScriptedSTT(["one", "two"]), tts=tts, llm=llm) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.until("done")
        assert [e["code"] for e in h.transport.events("error")] == ["tts_failed"]
        assert tts.spoken == ["Fine here.", "This is broken.", APOLOGY]
        said = {ToneTTS.call_of(f) for f in h.transport.audio()}
        assert said == {0, 2}
        # the text is still stored whole: it was shown, only the audio failed
        assert (await h.messages("assistant"))[-1].text == "Fine here. This is broken. Never said."
        await h.mic.utterance()
        await h.until("done", 2)
        assert tts.spoken[-1] == "All good." and h.transport.count("error") == 1


async def test_failed_model_is_an_apology_and_the_session_goes_on(db: str) -> None:
    failure = ProviderError("upstream 503", code="llm_unavailable", retryable=True)
    tts = ToneTTS()
    llm = ScriptedLLM([failure], "Back again.")
    async with voice_harness(db, stt=ScriptedSTT(["one", "two"]), tts=tts, llm=llm) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.until("done")
        assert [e["code"] for e in h.transport.events("error")] == ["llm_unavailable"]
        assert h.transport.events("turn_end")[0]["status"] == "error"
        assert tts.spoken == [APOLOGY]
        await h.mic.utterance()
        await h.until("done", 2)
        assert (await h.messages("assistant"))[-1].text == "Back again."


async def test_done_carries_the_latency_breakdown(db: str) -> None:
    stt = ScriptedSTT(["hello"], delay=0.2)
    llm = ScriptedLLM([Pause(0.1), *tokens("Hi there.")])
    tts = ToneTTS(delay=0.05)
    async with voice_harness(db, stt=stt, llm=llm, tts=tts) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.until("done")
        latency = h.transport.events("done")[0]["latency_ms"]
        assert latency == {"stt_final": 200.0, "first_token": 300.0, "first_audio": 350.0}


async def test_partial_transcripts_are_forwarded(db: str) -> None:
    stt = ScriptedSTT(["book a table"], partial="book", partial_after=20)
    async with voice_harness(db, stt=stt) as h:
        await h.conn.start()
        await h.mic.utterance()
        partials = h.transport.events("transcript_partial")
        assert partials == [{"type": "transcript_partial", "text": "book"}]
        assert h.transport.index("transcript_partial") < h.transport.index("transcript_final")


async def test_transcripts_off_sends_no_partials(db: str) -> None:
    stt = ScriptedSTT(["book a table"], partial="book", partial_after=20)
    async with voice_harness(db, stt=stt, options=VoiceOptions(transcripts=False)) as h:
        await h.conn.start()
        await h.mic.utterance()
        assert h.transport.count("transcript_partial") == 0
