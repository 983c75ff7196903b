"""Preemptive generation: the decision machine driven directly, then a voice session in
virtual time — a draft dropped when the caller speaks on leaves no trace (history,
events, audio, tools), a draft that matches the final transcript gets the first audio
out sooner, and the option's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley.config import VoiceSpec
from parley.engines.base import ToolCallRequest
from parley.testing import FakeClock
from parley.testing.voice import (
    Pause,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    VoiceHarness,
    scripted_agent,
    tokens,
    voice_harness,
)
from parley.voice.drafts import preemption_enabled
from parley.voice.preemptive import (
    DropDraft,
    Preemption,
    PreemptionState,
    StartDraft,
    UseDraft,
)
from tests.plugins.stores import sqlite_url

# --- the decision machine -------------------------------------------------------------


def test_a_pause_starts_a_draft_that_the_matching_final_uses() -> None:
    p = Preemption()
    assert p.pause_started(" a table for four ") == [StartDraft("a table for four")]
    assert p.pause_started("a table for four") == []  # the same words again
    assert p.turn_ended() == []
    assert p.state is PreemptionState.ENDED
    assert p.final("a table for four") == [UseDraft("a table for four")]
    assert p.state is PreemptionState.IDLE and p.text == ""


def test_speaking_on_drops_the_draft() -> None:
    p = Preemption()
    p.pause_started("a table for")
    assert p.pause_cancelled() == [DropDraft()]
    assert p.state is PreemptionState.IDLE
    assert p.pause_cancelled() == []
    assert p.final("a table for") == []  # no draft: the turn runs as without


def test_newer_words_in_the_pause_redraft() -> None:
    p = Preemption()
    p.pause_started("a table")
    assert p.pause_started("a table for two") == [DropDraft(), StartDraft("a table for two")]
    assert p.text == "a table for two"
    assert p.pause_started("<sil>") == [DropDraft()]  # no words any more: nothing to answer
    assert p.state is PreemptionState.IDLE


def test_a_final_that_differs_drops_the_draft() -> None:
    p = Preemption()
    p.pause_started("a table for")
    p.turn_ended()
    assert p.final("a table for four people") == [DropDraft()]
    assert p.state is PreemptionState.IDLE


def test_a_new_pause_before_the_final_replaces_the_draft() -> None:
    p = Preemption()
    p.pause_started("hello")
    p.turn_ended()
    assert p.pause_started("and another") == [DropDraft(), StartDraft("and another")]
    assert p.final("hello") == []  # the newer draft stands for its own turn
    assert p.state is PreemptionState.DRAFTING


@pytest.mark.parametrize("transcript", ["", "   ", "<sil>", "[noise]"])
def test_no_words_no_draft(transcript: str) -> None:
    assert Preemption().pause_started(transcript) == []


def test_off_or_blocked_never_drafts() -> None:
    assert Preemption(enabled=False).pause_started("hello") == []
    p = Preemption()
    assert p.pause_started("yes", blocked=True) == []
    assert p.turn_ended() == [] and p.state is PreemptionState.IDLE


@pytest.mark.parametrize(
    ("fields", "enabled"),
    [
        ({}, True),
        ({"turn_detection": "silence"}, False),
        ({"preemptive_generation": False}, False),
        ({"turn_detection": "silence", "preemptive_generation": True}, True),
    ],
)
def test_the_option_defaults_follow_turn_detection(fields: dict[str, Any], enabled: bool) -> None:
    assert preemption_enabled(VoiceSpec.model_validate(fields)) is enabled


def test_the_option_rejects_other_values() -> None:
    with pytest.raises(ValueError, match="preemptive_generation"):
        VoiceSpec.model_validate({"preemptive_generation": "sometimes"})


# --- a voice session in virtual time ----------------------------------------------------

SPOKEN = "a table for four people"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


def assistant_texts(h: VoiceHarness) -> list[str]:
    """Every text an assistant_* event carried to the client."""
    out = []
    for event in h.transport.events():
        if event["type"].startswith("assistant_"):
            out.append(str(event.get("text", "")) + str(event.get("delta", "")))
    return out


async def test_a_dropped_draft_leaves_no_trace(db: str) -> None:
    """'a table for four' [pause: draft] 'people' [pause: draft, turn ends]: the first
    draft's reply is nowhere — not stored, not sent, not spoken."""
    stt = ScriptedSTT([SPOKEN], partial="a table for four", partial_after=10, partial_every=5)
    llm = ScriptedLLM("Four it is.", "Four people, noted.")
    tts = ToneTTS()
    async with voice_harness(db, stt=stt, llm=llm, tts=tts) as h:
        await h.conn.start()
        await h.mic.speak(0.6)
        await h.mic.silence(0.1)  # a short pause: the first draft runs (and finishes)
        assert h.conn.preemptive.started == 1
        await h.time.settle()
        stt.partial = SPOKEN
        await h.mic.speak(0.4)  # ... "people": the caller spoke on
        assert h.conn.preemptive.dropped == 1
        await h.mic.silence(0.3)  # reads complete: the turn ends after 0.2 s
        await h.until("done")
        assert [c[-1]["content"] for c in llm.calls] == ["a table for four", SPOKEN]
        assert h.conn.preemptive.used == 1
        assert [m.text for m in await h.messages("user")] == [SPOKEN]
        assert [m.text for m in await h.messages("assistant")] == ["Four people, noted."]
        assert [m.role for m in await h.messages()] == ["user", "assistant"]
        assert h.transport.events("transcript_final") == [
            {"type": "transcript_final", "text": SPOKEN}
        ]
        assert not any("Four it is" in text for text in assistant_texts(h))
        assert "Four people, noted." in " ".join(assistant_texts(h))
        assert tts.spoken == ["Four people, noted."]


async def test_a_draft_that_wants_a_tool_runs_nothing_until_the_turn_is_confirmed(
    db: str,
) -> None:
    runs: list[str] = []

    async def look_up(what: str) -> str:
        """Look something up."""
        runs.append(what)
        return "found"

    agent = scripted_agent(tools=["look_up"])
    call = ToolCallRequest("c1", "look_up", {"what": "tables"})
    stt = ScriptedSTT([SPOKEN], partial="look up tables", partial_after=10)
    llm = ScriptedLLM([*tokens("Let me see. "), call], default="Nothing else.")
    async with voice_harness(db, stt=stt, llm=llm, agent=agent, tools=[look_up]) as h:
        await h.conn.start()
        await h.mic.speak(0.6)
        await h.mic.silence(0.1)  # the draft asks for the tool ...
        await h.time.settle()
        await h.mic.speak(0.4)  # ... and the caller speaks on
        assert runs == [] and h.conn.preemptive.dropped == 1
        assert "tool_call_started" not in h.transport.types()
        assert await h.messages() == []
        await h.mic.silence(2.1)
        await h.until("done")
        assert runs == []  # the confirmed turn got "Nothing else." and called nothing
        assert [m.text for m in await h.messages("assistant")] == ["Nothing else."]


async def test_a_word_gap_starts_no_draft_a_longer_pause_does(db: str) -> None:
    """voice.draft_after_secs (0.1 s by default): the short gaps the VAD hears between
    words start no draft; a pause that could end the turn does."""
    time = FakeClock()
    stt = ScriptedSTT([SPOKEN], partial="a table for four", partial_after=10, partial_every=5)
    llm = ScriptedLLM("Four it is.", default="Four people, noted.", clock=time)
    async with voice_harness(db, stt=stt, llm=llm, time=time) as h:
        await h.conn.start()
        await h.mic.speak(0.6)
        for _ in range(3):
            await h.mic.silence(0.08)  # a gap between words
            await h.time.settle()
            assert h.conn.preemptive.started == 0 and llm.calls == []
            await h.mic.speak(0.2)
        await h.mic.silence(0.12)  # a pause past the minimum: the draft starts
        await h.time.settle()
        assert h.conn.preemptive.started == 1
        assert [c[-1]["content"] for c in llm.calls] == ["a table for four"]
        await h.mic.speak(0.2)  # the caller spoke on after all: dropped
        assert h.conn.preemptive.dropped == 1


async def test_draft_after_secs_zero_drafts_at_every_gap(db: str) -> None:
    agent = scripted_agent(voice={"draft_after_secs": 0})
    stt = ScriptedSTT([SPOKEN], partial="a table for four", partial_after=10, partial_every=5)
    async with voice_harness(db, stt=stt, llm=ScriptedLLM(default="Ok."), agent=agent) as h:
        await h.conn.start()
        await h.mic.speak(0.6)
        await h.mic.silence(0.04)
        assert h.conn.preemptive.started == 1


def test_draft_after_secs_is_an_agent_option() -> None:
    assert VoiceSpec().draft_after_secs == 0.1
    assert VoiceSpec(draft_after_secs=0.15).draft_after_secs == 0.15
    with pytest.raises(ValueError):
        VoiceSpec(draft_after_secs=-0.1)


async def first_audio_delay(
    db: str, preemptive: bool, after_secs: float = 0.1
) -> tuple[float, list[str]]:
    """Last speech frame → first reply audio, with a model that takes 0.3 s to answer
    and a recogniser whose final takes 50 ms; and the stored history."""
    time = FakeClock()
    voice = {"preemptive_generation": preemptive, "draft_after_secs": after_secs}
    agent = scripted_agent(voice=voice)
    stt = ScriptedSTT([SPOKEN], partial=SPOKEN, partial_after=10, delay=0.05)
    llm = ScriptedLLM([Pause(0.3), *tokens("Four people, noted.")], clock=time)
    async with voice_harness(db, stt=stt, llm=llm, agent=agent, time=time) as h:
        await h.conn.start()
        await h.mic.silence(0.2)
        await h.mic.speak(1.0)
        speech_end = h.time.monotonic()
        await h.mic.silence(0.6)
        await h.until("done")
        history = [f"{m.role}: {m.text}" for m in await h.messages()]
        assert len(llm.calls) == 1  # the draft was the turn's model call, or there was none
        return h.transport.first_audio_at() - speech_end, history


async def test_a_used_draft_gets_the_first_audio_out_sooner(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    at_once, history_0 = await first_audio_delay(sqlite_url(tmp_path / "a"), True, 0.0)
    with_draft, history_on = await first_audio_delay(sqlite_url(tmp_path / "b"), True)
    without, history_off = await first_audio_delay(sqlite_url(tmp_path / "c"), False)
    assert history_0 == history_on == history_off
    assert history_on == [f"user: {SPOKEN}", "assistant: Four people, noted."]
    # without: 0.2 s end-of-turn wait + 0.05 s recogniser + 0.3 s model (+ a frame or so);
    # with: the model started at the silence (draft_after_secs 0) or 0.1 s into it (the
    # default), so only the longer of that and the turn's end counts
    assert without == pytest.approx(0.55, abs=0.04)
    assert at_once == pytest.approx(0.3, abs=0.04)
    assert with_draft == pytest.approx(0.4, abs=0.04)


async def test_a_used_draft_runs_its_tool_once_after_the_turn_is_confirmed(db: str) -> None:
    runs: list[float] = []
    time = FakeClock()

    async def look_up(what: str) -> str:
        """Look something up."""
        runs.append(time.monotonic())
        return "found"

    agent = scripted_agent(tools=["look_up"])
    call = ToolCallRequest("c1", "look_up", {"what": "tables"})
    stt = ScriptedSTT([SPOKEN], partial=SPOKEN, partial_after=10)
    llm = ScriptedLLM([*tokens("Let me see. "), call], "Found it.")
    async with voice_harness(db, stt=stt, llm=llm, agent=agent, tools=[look_up], time=time) as h:
        await h.conn.start()
        await h.mic.speak(0.6)
        await h.mic.silence(0.1)
        await h.time.settle()
        assert runs == [] and h.conn.preemptive.started == 1  # the draft holds the call
        await h.mic.silence(0.2)
        await h.until("done")
        assert h.conn.preemptive.used == 1 and len(runs) == 1
        types = h.transport.types()
        assert types.index("transcript_final") < types.index("tool_call_started")
        assert [m.role for m in await h.messages()] == ["user", "assistant", "tool", "assistant"]
        assert [m.text for m in await h.messages("assistant")] == ["Let me see. ", "Found it."]
