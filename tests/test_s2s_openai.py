"""The OpenAI Realtime adapter against the local GA-protocol server, as in production."""

from __future__ import annotations

import json

import pytest

from parley.audio.resample import Resampler
from parley.s2s.base import (
    AudioOut,
    GoAway,
    HistoryTurn,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    S2SConfig,
    S2SConfigError,
    ToolCall,
    ToolDeclaration,
    TurnComplete,
    UpstreamError,
)
from parley.s2s.openai_realtime import OpenAIRealtime
from parley.testing.fake_openai_realtime import FakeOpenAIRealtime
from parley.testing.s2s_script import RecordingSleep, Reply, events_until, final_texts

TURN = b"\x01\x00" * 1600  # 3200 bytes at 16 kHz → 4800 at 24 kHz, one turn for the fake


def wire_bytes(chunks: list[bytes]) -> int:
    """How many 24 kHz bytes the adapter's streaming resampler makes of these chunks."""
    resampler = Resampler(16_000, 24_000)
    return sum(len(resampler.process(c)) for c in chunks)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


async def test_spoken_turn_with_transcripts_and_session(sleeps: RecordingSleep) -> None:
    fake = FakeOpenAIRealtime([Reply(heard="what time is it", says="It is noon.", chunks=2)])
    config = S2SConfig(
        instructions="Be brief.",
        voice="marin",
        tools=(ToolDeclaration("clock", "tells the time"),),
    )
    async with fake.running():
        upstream = OpenAIRealtime("sk-test", fake.base_url + "/v1", sleep=sleeps)
        await upstream.connect(config)
        await upstream.send_audio(TURN)
        seen = await events_until(upstream.events(), lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    conn = fake.connections[0]
    assert conn.path == "/v1/realtime?model=gpt-realtime"
    assert conn.headers["authorization"] == "Bearer sk-test"
    session = conn.setup
    assert session["type"] == "realtime" and session["instructions"] == "Be brief."
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
    }
    assert session["audio"]["input"]["turn_detection"] == {"type": "server_vad"}
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert session["tools"] == [
        {
            "type": "function",
            "name": "clock",
            "description": "tells the time",
            "parameters": {"type": "object"},
        }
    ]
    assert final_texts(seen, InputTranscript) == ["what time is it"]
    assert final_texts(seen, OutputTranscript) == ["It is noon."]
    audio = [e for e in seen if isinstance(e, AudioOut)]
    assert [len(a.pcm) for a in audio] == [960, 960] and audio[0].item_id
    assert conn.audio_bytes == wire_bytes([TURN])


async def test_typed_text_and_tool_call_round_trip(sleeps: RecordingSleep) -> None:
    fake = FakeOpenAIRealtime(
        [
            Reply(tool_call=("get_weather", {"city": "Paris"})),
            Reply(says="It is sunny in Paris."),
        ]
    )
    async with fake.running():
        upstream = OpenAIRealtime("sk", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        await upstream.send_text("weather in Paris?")
        events = upstream.events()
        seen = await events_until(events, lambda e: isinstance(e, TurnComplete))
        calls = [e for e in seen if isinstance(e, ToolCall)]
        assert len(calls) == 1  # reported twice on the wire, once here
        assert (calls[0].name, dict(calls[0].args)) == ("get_weather", {"city": "Paris"})
        await upstream.send_tool_result(calls[0].call_id, {"forecast": "sunny"})
        seen = await events_until(events, lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    conn = fake.connections[0]
    assert conn.texts == ["weather in Paris?"]
    assert conn.tool_results == [
        {
            "type": "function_call_output",
            "call_id": calls[0].call_id,
            "output": json.dumps({"forecast": "sunny"}, separators=(",", ":")),
        }
    ]
    assert final_texts(seen, OutputTranscript) == ["It is sunny in Paris."]


async def test_interruption_then_truncate_with_heard_audio(sleeps: RecordingSleep) -> None:
    fake = FakeOpenAIRealtime(
        [Reply(heard="tell me", says="one two three four", chunks=4, interrupt_after=1)]
    )
    async with fake.running():
        upstream = OpenAIRealtime("sk", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        await upstream.send_audio(TURN)
        events = upstream.events()
        seen = await events_until(events, lambda e: isinstance(e, TurnComplete))
        audio = [e for e in seen if isinstance(e, AudioOut)]
        last_audio = max(i for i, e in enumerate(seen) if isinstance(e, AudioOut))
        assert any(isinstance(e, Interrupted) for e in seen[last_audio:])
        assert audio[0].item_id is not None
        await upstream.truncate(audio[0].item_id, 30)  # 30 ms of it was played
        await upstream.send_text("ok")  # goes after the truncate on the same socket
        await events_until(events, lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    assert len(audio) == 2
    assert final_texts(seen, OutputTranscript) == ["one two"]
    assert fake.connections[0].truncates == [
        {
            "type": "conversation.item.truncate",
            "item_id": audio[0].item_id,
            "content_index": 0,
            "audio_end_ms": 30,
        }
    ]


async def test_session_cap_rebuilds_from_history_keeping_audio(
    sleeps: RecordingSleep,
) -> None:
    fake = FakeOpenAIRealtime(
        [
            Reply(heard="first", says="alpha beta gamma", chunks=3, go_away_after=1),
            Reply(heard="second", says="carried on"),
        ]
    )
    seed = (HistoryTurn("user", "earlier question"), HistoryTurn("assistant", "earlier answer"))
    sent = [TURN]
    async with fake.running():
        upstream = OpenAIRealtime("sk", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig(history=seed))
        await upstream.send_audio(TURN)
        events = upstream.events()
        seen = await events_until(events, lambda e: isinstance(e, GoAway))
        for _ in range(4):
            chunk = TURN[:800]
            sent.append(chunk)
            await upstream.send_audio(chunk)
        # the expired socket's answer ends abandoned (a TurnComplete), then the new
        # session answers the caller's next turn
        seen += await events_until(events, lambda e: isinstance(e, TurnComplete))
        seen += await events_until(events, lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    assert [e for e in seen if isinstance(e, TurnComplete)] == [TurnComplete()] * 2
    assert len(fake.connections) == 2
    assert fake.connections[0].seeded == [
        ("user", "earlier question"),
        ("assistant", "earlier answer"),
    ]
    assert fake.connections[1].seeded == [
        ("user", "earlier question"),
        ("assistant", "earlier answer"),
        ("user", "first"),
    ]
    assert fake.audio_bytes == wire_bytes(sent)
    assert final_texts(seen, InputTranscript) == ["first", "second"]
    assert final_texts(seen, OutputTranscript) == ["carried on"]
    assert (upstream.swaps, upstream.rebuilds) == (1, 1)


async def test_refused_connection_is_an_error_event(sleeps: RecordingSleep) -> None:
    fake = FakeOpenAIRealtime()
    fake.refuse = [503, 503, 503, 503]
    async with fake.running():
        upstream = OpenAIRealtime("sk", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        seen = [e async for e in upstream.events()]
    assert sleeps.calls == [0.5, 1.0, 2.0]
    assert len(seen) == 1 and isinstance(seen[0], UpstreamError)
    assert not seen[0].retryable and "503" in seen[0].message


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(S2SConfigError, match="PARLEY_OPENAI_API_KEY"):
        OpenAIRealtime("")
