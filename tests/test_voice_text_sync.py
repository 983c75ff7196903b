"""Assistant text goes out in step with the agent's audio (``TextInStep``).

Unit: literal events through the wrapper. Whole session: the benchmark's fake LLM
(60 word tokens, 10 ms apart) and fake TTS in virtual time; the reply's text takes a
handful of messages instead of two per token, and nothing about order or content
changes: joined deltas are the stored reply, every text message comes before the
``assistant_message`` that ends it, and at most one delta goes out per audio batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.brain.core import UserInput
from parley.engines.fake import REPLY_TEXT, FakeLLM, FakeTTS, reply_tokens
from parley.events import AssistantDelta, AssistantMessage, AssistantText, Event, Vad
from parley.testing import FakeClock
from parley.testing.voice import ScriptedLLM, ToneTTS, scripted_agent, voice_harness
from parley.voice.text_sync import TextInStep
from tests.plugins.stores import sqlite_url


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)


async def test_text_is_held_while_speaking_and_flushed_as_one_chunk_and_one_delta() -> None:
    inner = Collect()
    holding = True
    sink = TextInStep(inner, lambda: holding)
    for token in ["Hello", " there", "."]:
        await sink.emit(AssistantText("chunk", token))
        await sink.emit(AssistantDelta(token))
    assert inner.events == [] and sink.pending
    await sink.flush()
    assert inner.events == [AssistantText("chunk", "Hello there."), AssistantDelta("Hello there.")]
    await sink.flush()  # nothing held: nothing sent
    assert len(inner.events) == 2 and not sink.pending


async def test_any_other_event_sends_the_held_text_first() -> None:
    inner = Collect()
    sink = TextInStep(inner, lambda: True)
    await sink.emit(AssistantText("start"))
    await sink.emit(AssistantText("chunk", "Hi"))
    await sink.emit(AssistantDelta("Hi"))
    await sink.emit(AssistantMessage("m1", "Hi"))
    await sink.emit(Vad("speech_started"))
    assert inner.events == [
        AssistantText("start"),
        AssistantText("chunk", "Hi"),
        AssistantDelta("Hi"),
        AssistantMessage("m1", "Hi"),
        Vad("speech_started"),
    ]


async def test_text_goes_out_at_once_when_nothing_is_spoken() -> None:
    inner = Collect()
    sink = TextInStep(inner, lambda: False)
    await sink.emit(AssistantText("chunk", "a"))
    await sink.emit(AssistantDelta("a"))
    assert inner.events == [AssistantText("chunk", "a"), AssistantDelta("a")]


async def test_a_spoken_reply_sends_its_text_in_step_with_the_audio(tmp_path: Path) -> None:
    time = FakeClock()
    llm, tts = FakeLLM(clock=time), FakeTTS(clock=time)
    agent = scripted_agent(brain="llm")
    async with voice_harness(sqlite_url(tmp_path), agent=agent, llm=llm, tts=tts, time=time) as h:
        await h.conn.start()
        h.conn.user_turn(UserInput("book a table", "voice"))
        await h.until("done", limit_s=60)
        sent = h.transport.sent
        deltas = [
            s.data["text"] for s in sent if s.kind == "json" and s.data["type"] == "assistant_delta"
        ]
        chunks = [
            s.data["text"]
            for s in sent
            if s.kind == "json"
            and s.data["type"] == "assistant_text"
            and s.data["status"] == "chunk"
        ]
        assert "".join(deltas) == "".join(chunks) == REPLY_TEXT
        assert [m.text for m in await h.messages("assistant")] == [REPLY_TEXT]
        # before: one chunk and one delta per token (60 tokens, 120 messages)
        assert len(reply_tokens()) == 60
        assert len(deltas) <= 12 and len(chunks) <= 12
        # never more than one delta between two audio messages
        kinds = ["audio" if s.kind == "audio" else s.data["type"] for s in sent]
        between = 0
        for kind in kinds:
            if kind == "audio":
                between = 0
            elif kind == "assistant_delta":
                between += 1
                assert between <= 1
        # the order of events is unchanged: text, then the message, turn end, done
        order = [k for k in kinds if k not in ("audio", "assistant_delta", "assistant_text")]
        assert order[-3:] == ["assistant_message", "turn_end", "done"]
        last_text = max(i for i, k in enumerate(kinds) if k == "assistant_delta")
        assert last_text < kinds.index("assistant_message")


@pytest.mark.parametrize("fail", [True, False])
async def test_when_speech_output_fails_the_text_still_streams(tmp_path: Path, fail: bool) -> None:
    tts = ToneTTS(fail_on="Hello" if fail else None)
    async with voice_harness(
        sqlite_url(tmp_path), llm=ScriptedLLM("Hello there. Bye now."), tts=tts
    ) as h:
        await h.conn.start()
        h.conn.user_turn(UserInput("hi", "voice"))
        await h.until("done")
        deltas = [e["text"] for e in h.transport.events("assistant_delta")]
        assert "".join(deltas) == "Hello there. Bye now."
        if fail:
            assert [e["code"] for e in h.transport.events("error")] == ["tts_failed"]
