"""Scripted-timeline tests of ``VoiceConnection`` in virtual time (no sleeps).

Each test drives a real connection and a real ``Brain`` on SQLite with scripted
engines (``parley.testing.voice``): 20 ms mic frames whose samples carry their VAD
probability, transcripts from a script, 100 ms of tone per spoken word. Times below
are virtual seconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.brain.core import UserInput
from parley.brain.history import INITIAL_TURN_MARKER, INTERRUPTED_NOTE
from parley.testing.voice import (
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    VoiceHarness,
    tokens,
    voice_harness,
)
from parley.voice.connection import VoiceOptions
from tests.plugins.stores import sqlite_url

REPLY = "One two three four five. Six seven eight nine ten."


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


async def say_utterance(h: VoiceHarness, speech: float = 1.0) -> None:
    """Silence, ``speech`` seconds of speech, then enough silence to end the turn."""
    await h.mic.silence(0.2)
    await h.mic.speak(speech)
    await h.mic.silence(0.5)


def spy_on_clear(h: VoiceHarness) -> list[tuple[float, str]]:
    """Record what ``Playout.clear`` returns (the heard text) and when."""
    calls: list[tuple[float, str]] = []
    clear = h.conn.playout.clear

    def spy(now: float) -> str:
        heard = clear(now)
        calls.append((now, heard))
        return heard

    h.conn.playout.clear = spy  # type: ignore[method-assign]
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
    async with voice_harness(db, stt=stt, llm=llm) as h:
        await h.conn.start()
        cleared = spy_on_clear(h)
        await say_utterance(h)
        t0 = h.transport.first_audio_at()
        assert t0 == pytest.approx(h.time.now())  # the answer plays at once
        await h.mic.silence(0.3)
        await h.mic.speak(0.3)  # barge-in once 0.3 s of speech is confirmed
        interrupted_at = h.transport.sent[h.transport.index("interrupted")].at
        assert interrupted_at - t0 == pytest.approx(0.6)
        # 0.6 s played: all of sentence one (0.5 s), 1 of the 5 words of sentence two
        assert cleared == [(pytest.approx(interrupted_at), "One two three four five. Six")]
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
    async with voice_harness(db, stt=ScriptedSTT(["go"]), llm=ScriptedLLM(REPLY)) as h:
        await h.conn.start()
        cleared = spy_on_clear(h)
        await say_utterance(h)
        await h.mic.silence(0.3)
        h.conn.client_played(250)  # the client is 50 ms behind our estimate
        await h.mic.speak(0.3)
        assert cleared[0][1] == "One two three four five."
        assert (await h.messages("assistant"))[-1].text == "One two three four five."


async def test_no_audio_of_the_interrupted_answer_after_interrupted(db: str) -> None:
    tts = ToneTTS()
    llm = ScriptedLLM(REPLY, "New answer.")
    async with voice_harness(db, stt=ScriptedSTT(["one", "two"]), llm=llm, tts=tts) as h:
        await h.conn.start()
        gate = h.transport.audio_gate = __import__("asyncio").Event()
        await say_utterance(h)
        # the pump is stuck sending the first frame of a 10-frame batch
        assert len(h.transport.audio()) == 1
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
        await say_utterance(h)
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


# --- tools, fillers, approvals ----------------------------------------------------------


async def test_filler_is_spoken_before_the_tool_and_not_stored(db: str) -> None:
    from parley.engines.base import ToolCallRequest

    check = ToolCallRequest(
        "call_check", "check_availability", {"date": "friday", "time": "19:00", "party_size": 2}
    )
    tts = ToneTTS()
    llm = ScriptedLLM([check], "We have a table.")
    async with voice_harness(db, stt=ScriptedSTT(["a table"]), llm=llm, tts=tts) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.until("done")
        started = h.transport.events("tool_call_started")[0]
        assert started["filler"] == "Let me check."
        assert tts.spoken == ["Let me check.", "We have a table."]
        first = h.transport.audio()[0]
        assert ToneTTS.call_of(first) == 0  # the filler is heard first
        texts = [m.text for m in await h.messages("assistant")]
        assert texts == ["", "We have a table."]


@pytest.mark.parametrize(("answer", "status", "reply"), [("yes", "approved", "Booked."),
                                                         ("no", "denied", "Not booked.")])
async def test_voice_approval(db: str, answer: str, status: str, reply: str) -> None:
    from parley.testing.voice import book_call

    stt = ScriptedSTT(["book it for sam", answer])
    llm = ScriptedLLM([*tokens("I can do that. "), book_call()], reply)
    tts = ToneTTS()
    async with voice_harness(db, stt=stt, llm=llm, tts=tts) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.until("done")
        asked = h.transport.events("approval_requested")[0]
        assert asked["prompt"] == "Book it?" and "Book it?" in tts.spoken
        assert h.transport.events("turn_end")[0]["status"] == "awaiting_approval"
        assert h.conn.stt.mode == "yes_no"  # type: ignore[attr-defined]
        await say_utterance(h, 0.4)
        await h.until("done", 2)
        assert stt.utterances[1].mode == "yes_no"
        assert h.conn.stt.mode == "default"  # type: ignore[attr-defined]
        resolved = h.transport.events("approval_resolved")[0]
        assert resolved == {"type": "approval_resolved", "tool_call_id": "call_book",
                            "status": status, "decided_by": "voice"}
        approval = await h.store.get_approval(h.session_id, "call_book")
        assert approval.status == status and approval.decided_by == "voice"
        completed = h.transport.events("tool_call_completed")[0]
        assert completed["status"] == ("ok" if answer == "yes" else "denied")
        assert (await h.messages("assistant"))[-1].text == reply
        assert [m.text for m in await h.messages("user")] == ["book it for sam"]


# --- the session's turn lock ------------------------------------------------------------


async def test_voice_turn_waits_for_a_chat_turn_holding_the_lock(db: str) -> None:
    import asyncio

    from parley.testing.voice import Pause

    llm = ScriptedLLM([Pause(5.0), *tokens("Chat answer.")], "Voice answer.")
    async with voice_harness(db, stt=ScriptedSTT(["by voice"]), llm=llm, channel="chat") as h:
        chat_started = h.time.now()
        chat = h.brain.user_turn(h.session_id, UserInput("by chat", "chat"))
        await chat.start()
        chat_events = asyncio.ensure_future(collect(chat))
        await h.store.update_session(h.session_id, current_channel="voice")
        await h.conn.start()
        await say_utterance(h)
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


async def collect(turn: object) -> list[str]:
    return [event.type async for event in turn]  # type: ignore[attr-defined]


async def test_two_turns_started_together_run_one_after_the_other(db: str) -> None:
    from parley.channels.voice_ws import dispatch

    from parley.testing.voice import Pause

    llm = ScriptedLLM([*tokens("First "), Pause(5.0), *tokens("answer.")], "Second answer.")
    async with voice_harness(db, llm=llm) as h:
        await h.conn.start()
        await dispatch(h.conn, {"type": "text", "text": "first"})
        await dispatch(h.conn, {"type": "text", "text": "second"})
        await h.until("done")
        assert h.time.now() < 1000.0 + 1  # the second did not wait for the first answer
        assert h.transport.count("error") == 0  # never busy with our own lock
        assert h.transport.count("interrupted") == 1  # the second input cut the first answer
        # the first input was stored before its answer was cut: nothing the user said is lost
        assert [m.text for m in await h.messages("user")] == ["first", "second"]
        first, second = await h.messages("assistant")
        assert (first.text, first.interrupted) == ("", True)  # none of it was heard
        assert (second.text, second.interrupted) == ("Second answer.", False)
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None


@pytest.mark.xfail(
    strict=True,
    reason="brain: TurnStream.cancel() while the body awaits the shielded store write of "
    "its assistant message leaves that message whole and not marked interrupted",
)
async def test_cancel_during_the_assistant_message_write_still_truncates(db: str) -> None:
    from parley.channels.voice_ws import dispatch

    llm = ScriptedLLM("First answer.", "Second answer.")
    async with voice_harness(db, llm=llm) as h:
        await h.conn.start()
        await dispatch(h.conn, {"type": "text", "text": "first"})
        await dispatch(h.conn, {"type": "text", "text": "second"})
        await h.until("done")
        assert h.transport.count("interrupted") == 1
        first = (await h.messages("assistant"))[0]
        assert (first.text, first.interrupted) == ("", True)
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None


async def test_close_while_speaking_stores_what_was_heard_and_frees_the_lock(db: str) -> None:
    async with voice_harness(db, stt=ScriptedSTT(["go"]), llm=ScriptedLLM(REPLY)) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.time.advance(0.3)
        await h.conn.close()
        stored = (await h.messages("assistant"))[-1]
        assert (stored.text, stored.interrupted) == ("One two three", True)
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None
        assert h.transport.count("interrupted") == 0  # nobody is listening any more


async def test_close_while_the_model_is_thinking_stores_nothing_unheard(db: str) -> None:
    from parley.testing.voice import Pause

    llm = ScriptedLLM([*tokens("Half of "), Pause(10.0), *tokens("the answer.")])
    async with voice_harness(db, stt=ScriptedSTT(["go"]), llm=llm) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.time.advance(1.0)
        await h.conn.close()
        assert await h.brain.coordinator.lock_owner(f"turn:{h.session_id}") is None
        assistant = await h.messages("assistant")
        assert all(m.text == "" and m.interrupted for m in assistant)


# --- text, ui actions, greetings --------------------------------------------------------


async def test_typed_text_and_ui_actions_run_turns(db: str) -> None:
    from parley.channels.voice_ws import dispatch

    async with voice_harness(db, llm=ScriptedLLM("Hello.", "Risotto is rice.")) as h:
        await h.conn.start()
        await dispatch(h.conn, {"type": "text", "text": "  hello  "})
        await h.until("done")
        action = {"type": "ui_action", "msg": "Tell me about the risotto", "display": "Risotto"}
        await dispatch(h.conn, action)
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
    from parley.channels.voice_ws import dispatch

    async with voice_harness(db) as h:
        await h.conn.start()
        assert await dispatch(h.conn, msg) is None
        await h.time.advance(1.0)
        assert [e["code"] for e in h.transport.events("error")] == ["bad_message"]
        assert await h.messages() == []
        assert await dispatch(h.conn, {"type": "ping"}) is None
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
    from parley.engines.base import EngineError
    from parley.voice.response import APOLOGY

    stt = ScriptedSTT(["second try"])
    stt.fail_next = EngineError("decoder crashed", code="stt_failed")
    tts = ToneTTS()
    async with voice_harness(db, stt=stt, tts=tts, llm=ScriptedLLM("Got it.")) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.until("done")
        assert [e["code"] for e in h.transport.events("error")] == ["stt_failed"]
        assert tts.spoken == [APOLOGY]
        assert await h.messages() == []
        await say_utterance(h)
        await h.until("done", 2)
        assert [m.text for m in await h.messages()] == ["second try", "Got it."]


async def test_failed_speech_output_is_an_apology_and_the_session_goes_on(db: str) -> None:
    from parley.voice.response import APOLOGY

    tts = ToneTTS(fail_on="broken")
    llm = ScriptedLLM("Fine here. This is broken. Never said.", "All good.")
    async with voice_harness(db, stt=ScriptedSTT(["one", "two"]), tts=tts, llm=llm) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.until("done")
        assert [e["code"] for e in h.transport.events("error")] == ["tts_failed"]
        assert tts.spoken == ["Fine here.", "This is broken.", APOLOGY]
        said = {ToneTTS.call_of(f) for f in h.transport.audio()}
        assert said == {0, 2}
        # the text is still stored whole: it was shown, only the audio failed
        assert (await h.messages("assistant"))[-1].text == "Fine here. This is broken. Never said."
        await say_utterance(h)
        await h.until("done", 2)
        assert tts.spoken[-1] == "All good." and h.transport.count("error") == 1


async def test_failed_model_is_an_apology_and_the_session_goes_on(db: str) -> None:
    from parley.engines.base import ProviderError
    from parley.voice.response import APOLOGY

    failure = ProviderError("upstream 503", code="llm_unavailable", retryable=True)
    tts = ToneTTS()
    llm = ScriptedLLM([failure], "Back again.")
    async with voice_harness(db, stt=ScriptedSTT(["one", "two"]), tts=tts, llm=llm) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.until("done")
        assert [e["code"] for e in h.transport.events("error")] == ["llm_unavailable"]
        assert h.transport.events("turn_end")[0]["status"] == "error"
        assert tts.spoken == [APOLOGY]
        await say_utterance(h)
        await h.until("done", 2)
        assert (await h.messages("assistant"))[-1].text == "Back again."


async def test_done_carries_the_latency_breakdown(db: str) -> None:
    from parley.testing.voice import Pause

    stt = ScriptedSTT(["hello"], delay=0.2)
    llm = ScriptedLLM([Pause(0.1), *tokens("Hi there.")])
    tts = ToneTTS(delay=0.05)
    async with voice_harness(db, stt=stt, llm=llm, tts=tts) as h:
        await h.conn.start()
        await say_utterance(h)
        await h.until("done")
        latency = h.transport.events("done")[0]["latency_ms"]
        assert latency == {"stt_final": 200.0, "first_token": 300.0, "first_audio": 350.0}


async def test_partial_transcripts_are_forwarded(db: str) -> None:
    stt = ScriptedSTT(["book a table"], partial="book", partial_after=20)
    async with voice_harness(db, stt=stt) as h:
        await h.conn.start()
        await say_utterance(h)
        partials = h.transport.events("transcript_partial")
        assert partials == [{"type": "transcript_partial", "text": "book"}]
        assert h.transport.index("transcript_partial") < h.transport.index("transcript_final")


async def test_transcripts_off_sends_no_partials(db: str) -> None:
    stt = ScriptedSTT(["book a table"], partial="book", partial_after=20)
    async with voice_harness(db, stt=stt, options=VoiceOptions(transcripts=False)) as h:
        await h.conn.start()
        await say_utterance(h)
        assert h.transport.count("transcript_partial") == 0
