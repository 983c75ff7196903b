"""False-interruption recovery in the live voice session, in virtual time (no sleeps).

A sound over the agent pauses its audio within one playout batch (``playback_paused``);
then either it was not an interruption (a cough, a backchannel) and the agent plays on
from where it paused (``playback_resumed``, every byte of the reply still reaches the
client, in order), or it was (the caller goes on talking) and the reply is cut as a
barge-in cuts it: ``interrupted`` and the stored message truncated to what was heard
before the pause. Times are virtual seconds; 100 ms of tone per spoken word.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parley.testing.voice import (
    ScriptedEndOfTurn,
    ScriptedLLM,
    ScriptedSTT,
    ToneTTS,
    VoiceHarness,
    book_call,
    scripted_agent,
    tokens,
    voice_harness,
)
from parley.voice.false_interruption import Playback
from tests.plugins.stores import sqlite_url

REPLY = "One two three four five. Six seven eight nine ten."
BATCH_S = 0.06  # the pump's send batch: a pause must land within one
# ScriptedLLM answers in call order: where the scripted partial is not the final, a
# preemptive draft would take a scripted reply (tests/test_preemptive.py covers drafts)
NO_DRAFTS = {"voice": {"preemptive_generation": False}}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


def reply_audio(tts: ToneTTS, word_samples: int = 1600) -> bytes:
    """Every byte ``ToneTTS`` produced, in call order: what an uncut reply plays."""
    out = []
    for call, text in enumerate(tts.spoken):
        wave = np.tile(np.array([1, -1], dtype="<i2"), word_samples // 2) * (100 + call)
        out.append(wave.astype("<i2").tobytes() * len(text.split()))
    return b"".join(out)


def sent_between(h: VoiceHarness, first: str, second: str) -> list[bytes]:
    """The audio messages sent between the first ``first`` and ``second`` events."""
    sent = h.transport.sent[h.transport.index(first) : h.transport.index(second)]
    return [s.data for s in sent if s.kind == "audio"]


async def test_a_cough_pauses_the_agent_and_it_resumes_with_no_word_lost(db: str) -> None:
    stt = ScriptedSTT(["tell me"])
    tts = ToneTTS()
    async with voice_harness(db, stt=stt, llm=ScriptedLLM(REPLY), tts=tts) as h:
        await h.conn.start()
        await h.mic.utterance()
        t0 = h.transport.first_audio_at()
        await h.mic.silence(0.3)
        onset = h.time.monotonic()
        await h.mic.speak(0.26)  # a cough: long enough to be an utterance, no words
        paused_at = h.transport.sent[h.transport.index("playback_paused")].at
        assert 0 < paused_at - onset <= BATCH_S
        assert h.conn.input.recovery is not None
        assert h.conn.input.recovery.state is Playback.PAUSED
        await h.mic.silence(0.4)
        resumed_at = h.transport.sent[h.transport.index("playback_resumed")].at
        # no audio went out while paused
        assert sent_between(h, "playback_paused", "playback_resumed") == []
        assert resumed_at - onset == pytest.approx(0.26 + 0.3, abs=0.03)
        await h.mic.silence(0.6)  # the cough's utterance ends (unvoiced for stop_secs)
        await h.until("done")
        assert h.transport.count("interrupted") == 0
        assert h.transport.audio_bytes() == reply_audio(tts)  # every byte, in order
        # the reply took 1 s of audio plus the pause
        done_at = h.transport.sent[h.transport.index("done")].at
        assert done_at - t0 == pytest.approx(1.0 + (resumed_at - paused_at), abs=0.05)
        assert stt.cancelled == 1  # the cough never became a turn
        assert [(m.role, m.text, m.interrupted) for m in await h.messages()] == [
            ("user", "tell me", False),
            ("assistant", REPLY, False),
        ]


async def until_audio(h: VoiceHarness) -> None:
    """Feed silence until the agent's audio starts."""
    while not h.transport.audio_messages():
        await h.mic.silence(0.02)


async def test_a_backchannel_is_not_a_turn(db: str) -> None:
    # the scripted recogniser hears "mm-hm" 5 frames into every utterance
    stt = ScriptedSTT(["tell me", "mm-hm"], partial="mm-hm", partial_after=5)
    agent = scripted_agent(**NO_DRAFTS)
    async with voice_harness(db, stt=stt, llm=ScriptedLLM(REPLY), agent=agent) as h:
        await h.conn.start()
        await h.mic.utterance()
        await until_audio(h)
        await h.mic.silence(0.2)
        await h.mic.speak(0.4)
        await h.mic.silence(2.0)
        await h.until("done")
        assert h.transport.types().count("playback_paused") == 1
        assert h.transport.types().count("playback_resumed") == 1
        assert h.transport.count("interrupted") == 0
        assert len(h.llm.calls) == 1
        assert h.transport.count("transcript_final") == 1  # "tell me" only
        assert stt.cancelled == 1
        assert [m.text for m in await h.messages("assistant")] == [REPLY]


async def test_talking_on_cuts_the_agent_at_what_was_heard_before_the_pause(db: str) -> None:
    stt = ScriptedSTT(["tell me", "wait a moment"])
    llm = ScriptedLLM(REPLY, "Okay, waiting.")
    async with voice_harness(db, stt=stt, llm=llm) as h:
        await h.conn.start()
        await h.mic.utterance()
        t0 = h.transport.first_audio_at()
        await h.mic.silence(0.3)
        onset = h.time.monotonic()
        await h.mic.speak(1.0)  # the caller goes on talking: a real interruption
        paused_at = h.transport.sent[h.transport.index("playback_paused")].at
        interrupted_at = h.transport.sent[h.transport.index("interrupted")].at
        assert paused_at - onset <= BATCH_S
        assert interrupted_at - onset == pytest.approx(0.8, abs=0.03)  # cut_secs of voice
        assert "playback_resumed" not in h.transport.types()
        assert sent_between(h, "playback_paused", "interrupted") == []
        # heard: the 0.34 s played before the pause = 3 of sentence one's 5 words
        assert paused_at - t0 == pytest.approx(0.34, abs=0.021)
        stored = (await h.messages("assistant"))[-1]
        assert stored.text == "One two three" and stored.interrupted
        await h.mic.silence(0.6)
        await h.until("done")  # the cut reply has none
        assert [m.text for m in await h.messages("user")] == ["tell me", "wait a moment"]


async def test_with_recovery_off_speech_cuts_at_once_as_before(db: str) -> None:
    agent = scripted_agent(voice={"false_interruption_secs": 0})
    async with voice_harness(db, stt=ScriptedSTT(["go"]), llm=ScriptedLLM(REPLY), agent=agent) as h:
        await h.conn.start()
        assert h.conn.input.recovery is None
        await h.mic.utterance()
        await h.mic.silence(0.3)
        await h.mic.speak(0.3)
        assert h.transport.count("interrupted") == 1
        assert "playback_paused" not in h.transport.types()


@pytest.mark.parametrize("pending", [True, False])
async def test_a_yes_over_a_pending_approval_is_an_answer(db: str, pending: bool) -> None:
    # the scripted recogniser hears "yes" every 3 frames of every utterance
    stt = ScriptedSTT(["book it for sam", "yes"], partial="yes", partial_after=3, partial_every=3)
    first = [*tokens("I can do that. "), book_call()] if pending else REPLY
    llm = ScriptedLLM(first, "Booked.")
    async with voice_harness(db, stt=stt, llm=llm, agent=scripted_agent(**NO_DRAFTS)) as h:
        await h.conn.start()
        await h.mic.utterance()
        await until_audio(h)
        assert (h.conn.responder.pending_approval is not None) is pending
        await h.mic.silence(0.1)
        await h.mic.speak(0.3)  # "yes" over the prompt
        await h.mic.silence(1.0)
        assert "playback_paused" in h.transport.types()
        if pending:  # an answer: cut the prompt and decide
            assert h.transport.count("interrupted") == 1
            resolved = h.transport.events("approval_resolved")
            assert [(e["status"], e["decided_by"]) for e in resolved] == [("approved", "voice")]
        else:  # a backchannel: play on, no turn
            assert h.transport.count("interrupted") == 0
            assert "playback_resumed" in h.transport.types()
            await h.until("done")
            assert len(llm.calls) == 1


# --- one transcript_final per user turn ---------------------------------------------------


async def test_a_pause_mid_sentence_sends_partials_and_one_final_for_the_turn(db: str) -> None:
    stt = ScriptedSTT(["a table for four people"], partial="a table for", partial_after=20)
    agent = scripted_agent(**NO_DRAFTS)
    async with voice_harness(db, stt=stt, llm=ScriptedLLM("Done."), agent=agent) as h:
        await h.conn.start()
        await h.mic.silence(0.2)
        await h.mic.speak(0.6)
        await h.mic.silence(0.9)  # "a table for..." : longer than stop_secs, not the end
        assert h.transport.count("transcript_final") == 0
        assert h.transport.events("transcript_partial") == [
            {"type": "transcript_partial", "text": "a table for"}
        ]
        await h.mic.speak(0.5)
        await h.mic.silence(2.1)  # still reads incomplete: the long wait (max_stop_secs)
        await h.until("done")
        assert h.transport.events("transcript_final") == [
            {"type": "transcript_final", "text": "a table for four people"}
        ]
        assert len(stt.utterances) == 1 and len(h.llm.calls) == 1


# --- the audio end-of-turn model ------------------------------------------------------------


@pytest.mark.parametrize(("score", "ends_after"), [(0.9, 0.2), (0.1, 1.5)])
async def test_the_audio_model_decides_a_wordless_pause(
    db: str, score: float, ends_after: float
) -> None:
    # no partial transcript: the audio model's score decides (0.2 s done, 1.5 s not)
    model = ScriptedEndOfTurn(score, delay=0.03)
    async with voice_harness(db, stt=ScriptedSTT(["hello"]), end_of_turn=model) as h:
        await h.conn.start()
        await h.mic.silence(0.2)
        await h.mic.speak(1.0)
        silence_onset = h.time.monotonic()
        await h.mic.silence(2.0)
        stopped = h.transport.sent[h.transport.index("vad", 1)].at
        final = h.transport.sent[h.transport.index("transcript_final")].at
        assert stopped == pytest.approx(final)
        ended = max(ends_after, 0.2 + 0.03)  # a "done" waits for the model's answer
        assert final - silence_onset == pytest.approx(ended, abs=0.021)
        # asked once, about the whole utterance (with the pre-roll before its onset)
        assert len(model.clips) == 1
        assert 1.0 <= model.clips[0] <= 1.0 + 0.5 + 0.2


async def test_a_pause_the_audio_never_decides_ends_in_a_resume(db: str) -> None:
    tts = ToneTTS()
    async with voice_harness(
        db, stt=ScriptedSTT(["tell me"]), llm=ScriptedLLM(REPLY), tts=tts
    ) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.mic.silence(0.2)
        await h.mic.speak(0.1)  # paused; then the client stops sending audio
        paused_at = h.transport.sent[h.transport.index("playback_paused")].at
        await h.until("playback_resumed")
        resumed_at = h.transport.sent[h.transport.index("playback_resumed")].at
        assert resumed_at - paused_at == pytest.approx(1.0 + 1.0)  # the window + the grace
        await h.until("done")
        assert h.transport.audio_bytes() == reply_audio(tts)


async def test_switching_to_push_to_talk_during_a_pause_plays_on(db: str) -> None:
    async with voice_harness(db, stt=ScriptedSTT(["tell me"]), llm=ScriptedLLM(REPLY)) as h:
        await h.conn.start()
        await h.mic.utterance()
        await h.mic.silence(0.2)
        await h.mic.speak(0.1)
        assert h.transport.count("playback_paused") == 1
        await h.conn.ptt(True)  # an explicit interruption: resumed, then cut
        await h.time.settle()
        types = h.transport.types()
        assert types[types.index("playback_paused") :] == [
            "playback_paused",
            "playback_resumed",
            "vad",
            "interrupted",
            "assistant_message",  # what was kept: heard before the pause
        ]
