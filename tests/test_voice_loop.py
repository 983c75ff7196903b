"""Scripted-timeline tests of ``VoiceConnection`` in virtual time (no sleeps).

Each test drives a real connection and a real ``Brain`` on SQLite with scripted
engines (``parley.testing.voice``): 20 ms mic frames whose samples carry their VAD
probability, transcripts from a script, 100 ms of tone per spoken word. Times below
are virtual seconds.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from parley.brain.core import UserInput
from parley.brain.history import INTERRUPTED_NOTE
from parley.brain.turn_stream import TurnStream
from parley.channels.voice_ws import handle_text
from parley.config import AgentSpec
from parley.testing.voice import (
    Pause,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    VoiceHarness,
    scripted_agent,
    tokens,
    vad_frame,
    voice_harness,
)
from parley.voice.io import VoiceOptions
from tests.plugins.stores import sqlite_url

REPLY = "One two three four five. Six seven eight nine ten."


def classic_barge_in() -> AgentSpec:
    """The agent with false-interruption recovery off: speech over the agent cuts it
    after ``barge_in_min_secs`` (the recovery path: tests/test_voice_recovery.py)."""
    return scripted_agent(voice={"false_interruption_secs": 0})


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


async def control(h: VoiceHarness, msg: dict[str, object]) -> bool:
    """A control frame as the browser sends it, through the codec; True for ``end``."""
    return await handle_text(h.conn, json.dumps(msg), h.transport)


def spy_on_clear(h: VoiceHarness) -> list[tuple[float, str]]:
    """Record what the audio output's ``clear`` returns (the heard text) and when."""
    calls: list[tuple[float, str]] = []
    clear = h.conn.audio.clear

    def spy(now: float) -> str:
        heard = clear(now)
        calls.append((now, heard))
        return heard

    h.conn.audio.clear = spy  # type: ignore[method-assign]
    return calls


# --- turn-taking ------------------------------------------------------------------------


async def test_turn_ends_after_stop_secs_of_silence(db: str) -> None:
    stt = ScriptedSTT(["hello there"])
    async with voice_harness(db, stt=stt, llm=ScriptedLLM("Hi.")) as h:
        await h.conn.start()
        await h.mic.silence(0.3)
        await h.mic.speak(1.0)
        await h.mic.silence(0.48)  # 24 frames: one short of stop_secs (0.5)
        assert h.transport.types() == ["vad"]  # speech_started only
        assert stt.utterances == []
        await h.mic.silence(0.02)
        assert h.transport.events("vad")[-1] == {"type": "vad", "state": "speech_stopped"}
        assert h.transport.events("transcript_final") == [
            {"type": "transcript_final", "text": "hello there"}
        ]
        # 25 frames of pre-roll (15 silent, 10 speech before the onset was confirmed),
        # the other 40 speech frames and the 25 frames of closing silence
        assert stt.utterances[0].frames == 90
        await h.until("done")
        history = [(m.role, m.text, m.channel) for m in await h.messages()]
        assert history == [("user", "hello there", "voice"), ("assistant", "Hi.", "voice")]


async def test_a_blip_shorter_than_start_secs_starts_nothing(db: str) -> None:
    stt = ScriptedSTT(["hello"])
    async with voice_harness(db, stt=stt) as h:
        await h.conn.start()
        await h.mic.speak(0.1)
        await h.mic.silence(2.0)
        assert h.transport.sent == []
        await h.mic.speak(1.0)
        await h.mic.silence(0.5)
        # the recogniser heard only the utterance and its pre-roll, not the blip
        assert [u.frames for u in stt.utterances] == [25 + 40 + 25]


async def test_two_utterances_in_one_chunk_reach_the_recogniser_apart(db: str) -> None:
    stt = ScriptedSTT(["one", "two"])
    async with voice_harness(db, stt=stt) as h:
        await h.conn.start()
        plan = [(0.2, 0.0), (1.0, 1.0), (0.8, 0.0), (1.0, 1.0), (0.5, 0.0)]
        chunk = b"".join(vad_frame(p) * round(secs / 0.02) for secs, p in plan)
        await h.conn.feed_audio(chunk)  # a client that sends 3.5 s at once
        await h.until("done")
        # pre-roll (all 10 silent frames, then 25), 10 + 40 speech, 25 closing silence
        assert [(u.text, u.frames) for u in stt.utterances] == [("one", 85), ("two", 90)]
        assert [m.text for m in await h.messages("user")] == ["one", "two"]


async def test_push_to_talk_ends_exactly_on_key_up(db: str) -> None:
    stt = ScriptedSTT(["book a table"])
    options = VoiceOptions(mode="push_to_talk")
    async with voice_harness(db, stt=stt, llm=ScriptedLLM("Sure."), options=options) as h:
        await h.conn.start()
        await h.mic.speak(0.5)  # key not held: ignored
        await h.conn.ptt(True)
        await h.mic.speak(0.4)
        await h.mic.silence(1.5)  # silence while the key is held ends nothing
        assert h.transport.count("transcript_final") == 0
        await h.conn.ptt(False)
        await h.time.settle()
        assert h.transport.count("transcript_final") == 1
        assert stt.utterances[0].frames == 95  # exactly the frames between down and up
        assert [e["state"] for e in h.transport.events("vad")] == [
            "speech_started",
            "speech_stopped",
        ]
        await h.until("done")
        with pytest.raises(ValueError, match="ptt_up without ptt_down"):
            await h.conn.ptt(False)


async def test_first_ptt_message_switches_a_hands_free_connection(db: str) -> None:
    stt = ScriptedSTT(["hello"])
    async with voice_harness(db, stt=stt) as h:
        await h.conn.start()
        await h.conn.ptt(True)
        await h.mic.speak(0.2)
        await h.conn.ptt(False)
        await h.time.settle()
        assert [u.frames for u in stt.utterances] == [10]


# --- barge-in ---------------------------------------------------------------------------


async def test_barge_in_stores_exactly_what_was_heard(db: str) -> None:
    stt = ScriptedSTT(["tell me", "wait"])
    llm = ScriptedLLM(REPLY, "Okay, waiting.")
    async with voice_harness(db, stt=stt, llm=llm, agent=classic_barge_in()) as h:
        await h.conn.start()
        cleared = spy_on_clear(h)
        await h.mic.utterance()
        t0 = h.transport.first_audio_at()
        assert t0 == pytest.approx(h.time.monotonic())  # the answer plays at once
        await h.mic.silence(0.3)
        await h.mic.speak(0.3)  # barge-in once 0.3 s of speech is confirmed
        interrupted_at = h.transport.sent[h.transport.index("interrupted")].at
        assert interrupted_at - t0 == pytest.approx(0.6)
        # 0.6 s played: all of sentence one (0.5 s), 1 of the 5 words of sentence two
        assert len(cleared) == 1 and cleared[0][0] == pytest.approx(interrupted_at)
        assert cleared[0][1] == "One two three four five. Six"
        stored = (await h.messages("assistant"))[-1]
        assert stored.text == cleared[0][1] and stored.interrupted
        await h.mic.speak(0.2)
        await h.mic.silence(0.5)
        await h.until("done")
        # the next model call knows the answer was cut short
        second = llm.calls[1]
        note = next(i for i, m in enumerate(second) if m["content"] == INTERRUPTED_NOTE)
        assert second[note - 1]["content"] == "One two three four five. Six"
        assert [m["content"] for m in second if m["role"] == "user"] == ["tell me", "wait"]


async def test_client_playback_reports_decide_what_was_heard(db: str) -> None:
    agent = classic_barge_in()
    async with voice_harness(db, stt=ScriptedSTT(["go"]), llm=ScriptedLLM(REPLY), agent=agent) as h:
        await h.conn.start()
        cleared = spy_on_clear(h)
        await h.mic.utterance()
        await h.mic.silence(0.3)
        h.conn.client_played(250)  # the client is 50 ms behind our estimate
        await h.mic.speak(0.3)
        assert cleared[0][1] == "One two three four five."
        assert (await h.messages("assistant"))[-1].text == "One two three four five."


async def test_no_audio_of_the_interrupted_answer_after_interrupted(db: str) -> None:
    tts = ToneTTS()
    llm = ScriptedLLM(REPLY, "New answer.")
    stt = ScriptedSTT(["one", "two"])
    async with voice_harness(db, stt=stt, llm=llm, tts=tts, agent=classic_barge_in()) as h:
        await h.conn.start()
        gate = h.transport.audio_gate = asyncio.Event()
        await h.mic.utterance()
        # the pump is stuck sending its first batch (10 frames in one message)
        assert len(h.transport.audio_messages()) == 1
        await h.mic.speak(0.3)  # barge in meanwhile
        assert h.transport.count("interrupted") == 1
        gate.set()
        await h.mic.speak(0.2)
        await h.mic.silence(0.5)
        await h.until("done")
        cut = h.transport.index("interrupted")
        late = {ToneTTS.call_of(f) for f in h.transport.audio(cut)}
        old_calls = {i for i, text in enumerate(tts.spoken) if text != "New answer."}
        assert late and not late & old_calls
        assert tts.spoken[-1] == "New answer."


async def test_short_noise_and_echo_do_not_interrupt(db: str) -> None:
    stt = ScriptedSTT(["talk"])
    long_reply = f"{REPLY} {REPLY}"  # 2 s of speech
    async with voice_harness(db, stt=stt, llm=ScriptedLLM(long_reply)) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.mic.speak(0.1)  # a click: shorter than start_secs
        await h.mic.silence(0.1)
        await h.mic.speak(0.26)  # a cough: a confirmed utterance below barge_in_min_secs
        await h.mic.silence(0.1)
        await h.mic.speak(0.4, prob=0.6)  # our own voice leaking back: below echo_activation
        await h.until("done")
        assert h.transport.count("interrupted") == 0
        assert stt.cancelled == 1  # the cough was dropped, not transcribed
        assert [(m.role, m.text, m.interrupted) for m in await h.messages()] == [
            ("user", "talk", False),
            ("assistant", long_reply, False),
        ]


# --- the session's turn lock ------------------------------------------------------------


async def test_voice_turn_waits_for_a_chat_turn_holding_the_lock(db: str) -> None:
    llm = ScriptedLLM([Pause(5.0), *tokens("Chat answer.")], "Voice answer.")
    async with voice_harness(db, stt=ScriptedSTT(["by voice"]), llm=llm, channel="chat") as h:
        chat_started = h.time.monotonic()
        chat = h.brain.user_turn(h.session_id, UserInput("by chat", "chat"))
        await chat.start()
        chat_events = asyncio.ensure_future(collect(chat))
        await h.store.update_session(h.session_id, current_channel="voice")
        await h.conn.start()
        await h.mic.utterance()
        assert [e["code"] for e in h.transport.events("error")] == ["session_busy"]
        await h.until("done")
        # the chat turn kept the lock for 5 s; the voice turn ran as soon as it was free
        voice_answer = h.transport.sent[h.transport.index("assistant_text")].at
        assert 5.0 <= voice_answer - chat_started <= 5.0 + 0.05 + 1e-6
        assert "turn_end" in await chat_events
        assert h.transport.count("error") == 1
        history = [(m.role, m.text, m.channel) for m in await h.messages()]
        assert history == [
            ("user", "by chat", "chat"),
            ("assistant", "Chat answer.", "chat"),
            ("user", "by voice", "voice"),
            ("assistant", "Voice answer.", "voice"),
        ]


async def collect(turn: TurnStream) -> list[str]:
    return [event.type async for event in turn]


async def test_two_turns_started_together_run_one_after_the_other(db: str) -> None:
    llm = ScriptedLLM([*tokens("First "), Pause(5.0), *tokens("answer.")], "Second answer.")
    async with voice_harness(db, llm=llm) as h:
        await h.conn.start()
        start = h.time.monotonic()
        await control(h, {"type": "text", "text": "first"})
        await control(h, {"type": "text", "text": "second"})
        await h.until("done")
        assert h.time.monotonic() - start < 1.0  # the second did not wait for the first answer
        assert h.transport.count("error") == 0  # never busy with our own lock
        assert h.transport.count("interrupted") == 1  # the second input cut the first answer
        # the first input was stored before its answer was cut: nothing the user said is lost
        assert [m.text for m in await h.messages("user")] == ["first", "second"]
        first, second = await h.messages("assistant")
        assert (first.text, first.interrupted) == ("", True)  # none of it was heard
        assert (second.text, second.interrupted) == ("Second answer.", False)
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None


async def test_cancel_during_the_assistant_message_write_still_truncates(db: str) -> None:
    llm = ScriptedLLM("First answer.", "Second answer.")
    async with voice_harness(db, llm=llm) as h:
        await h.conn.start()
        await control(h, {"type": "text", "text": "first"})
        await control(h, {"type": "text", "text": "second"})
        await h.until("done")
        assert h.transport.count("interrupted") == 1
        first = (await h.messages("assistant"))[0]
        assert (first.text, first.interrupted) == ("", True)
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None


async def test_close_while_speaking_stores_what_was_heard_and_frees_the_lock(db: str) -> None:
    async with voice_harness(db, stt=ScriptedSTT(["go"]), llm=ScriptedLLM(REPLY)) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.time.run_for(0.3)
        await h.conn.close()
        stored = (await h.messages("assistant"))[-1]
        assert (stored.text, stored.interrupted) == ("One two three", True)
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None
        assert h.transport.count("interrupted") == 0  # nobody is listening any more


async def test_close_while_the_model_is_thinking_stores_nothing_unheard(db: str) -> None:
    llm = ScriptedLLM([*tokens("Half of "), Pause(10.0), *tokens("the answer.")])
    async with voice_harness(db, stt=ScriptedSTT(["go"]), llm=llm) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.time.run_for(1.0)
        await h.conn.close()
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None
        assistant = await h.messages("assistant")
        assert all(m.text == "" and m.interrupted for m in assistant)
