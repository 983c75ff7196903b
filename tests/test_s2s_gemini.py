"""The Gemini Live adapter against the local BidiGenerateContent server, as in production."""

from __future__ import annotations

import pytest

from parley.s2s.base import (
    AudioOut,
    GoAway,
    HistoryTurn,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    ResumptionHandle,
    S2SConfig,
    S2SConfigError,
    ToolCall,
    ToolDeclaration,
    TurnComplete,
    UpstreamError,
)
from parley.s2s.gemini_live import GeminiLive
from parley.testing.fake_gemini_live import FakeGeminiLive
from parley.testing.s2s_script import RecordingSleep, Reply, events_until, final_texts

TURN = b"\x01\x00" * 1600  # 3200 bytes = one caller turn for the fake's "VAD"


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


async def test_spoken_turn_with_transcripts_and_setup(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive([Reply(heard="what time is it", says="It is noon.", chunks=2)])
    config = S2SConfig(
        instructions="Be brief.",
        voice="Puck",
        tools=(ToolDeclaration("clock", "tells the time", {"type": "object"}),),
        compression_trigger_tokens=20000,
        compression_target_tokens=10000,
    )
    async with fake.running():
        upstream = GeminiLive("k-123", fake.base_url, sleep=sleeps)
        await upstream.connect(config)
        await upstream.send_audio(TURN)
        seen = await events_until(upstream.events(), lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    assert final_texts(seen, InputTranscript) == ["what time is it"]
    assert final_texts(seen, OutputTranscript) == ["It is noon."]
    assert [len(e.pcm) for e in seen if isinstance(e, AudioOut)] == [960, 960]
    conn = fake.connections[0]
    assert conn.path.endswith("BidiGenerateContent?key=k-123")
    assert conn.audio_bytes == len(TURN)
    setup = conn.setup
    assert setup["model"] == "models/gemini-live-2.5-flash-preview"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    voice = setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]
    assert voice == {"voiceName": "Puck"}
    assert setup["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert setup["tools"][0]["functionDeclarations"][0]["name"] == "clock"
    assert setup["contextWindowCompression"] == {
        "slidingWindow": {"targetTokens": 10000},
        "triggerTokens": 20000,
    }
    assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}
    assert upstream.history == [
        HistoryTurn("user", "what time is it"),
        HistoryTurn("assistant", "It is noon."),
    ]


async def test_tool_call_round_trip(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive(
        [
            Reply(heard="weather in Paris", tool_call=("get_weather", {"city": "Paris"})),
            Reply(says="It is sunny in Paris."),
        ]
    )
    async with fake.running():
        upstream = GeminiLive("k", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        await upstream.send_audio(TURN)
        events = upstream.events()
        seen = await events_until(events, lambda e: isinstance(e, ToolCall))
        call = seen[-1]
        assert isinstance(call, ToolCall)
        assert (call.name, dict(call.args)) == ("get_weather", {"city": "Paris"})
        await upstream.send_tool_result(call.call_id, {"forecast": "sunny"})
        seen = await events_until(events, lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    assert fake.connections[0].tool_results == [
        {"id": call.call_id, "name": "get_weather", "response": {"forecast": "sunny"}}
    ]
    assert final_texts(seen, OutputTranscript) == ["It is sunny in Paris."]


async def test_interruption_is_signalled_and_cuts_the_answer(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive(
        [Reply(heard="tell me", says="one two three four", chunks=4, interrupt_after=1)]
    )
    async with fake.running():
        upstream = GeminiLive("k", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        await upstream.send_audio(TURN)
        seen = await events_until(upstream.events(), lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    kinds = [type(e) for e in seen]
    assert kinds.count(AudioOut) == 2
    assert kinds.index(Interrupted) > max(i for i, k in enumerate(kinds) if k is AudioOut)
    assert final_texts(seen, OutputTranscript) == ["one two"]


async def test_go_away_mid_answer_resumes_and_keeps_caller_audio(
    sleeps: RecordingSleep,
) -> None:
    fake = FakeGeminiLive(
        [
            Reply(heard="first", says="alpha beta gamma", chunks=3, go_away_after=0),
            Reply(heard="second", says="carried on"),
        ]
    )
    async with fake.running():
        upstream = GeminiLive("k", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        await upstream.send_audio(TURN)
        events = upstream.events()
        seen = await events_until(events, lambda e: isinstance(e, GoAway))
        # The caller keeps talking while the new connection is opened: buffered, not lost.
        for _ in range(4):
            await upstream.send_audio(TURN[:800])
        seen += await events_until(events, lambda e: isinstance(e, TurnComplete))
        seen += await events_until(events, lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    assert final_texts(seen, OutputTranscript) == ["alpha beta gamma", "carried on"]
    assert final_texts(seen, InputTranscript) == ["first", "second"]
    assert len(fake.connections) == 2
    assert fake.resumed_with == ["handle-1"]
    assert fake.connections[1].setup["sessionResumption"] == {"handle": "handle-1"}
    assert fake.connections[1].seeded == []  # resumed: the provider kept the context
    assert fake.audio_bytes == 2 * len(TURN)
    assert (upstream.swaps, upstream.rebuilds) == (1, 0)


async def test_refused_resumption_rebuilds_from_history(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive(
        [
            Reply(heard="first", says="alpha beta", chunks=2, go_away_after=0),
            Reply(heard="second", says="rebuilt"),
        ],
        accept_handles=False,
    )
    history = (HistoryTurn("user", "earlier question"), HistoryTurn("assistant", "earlier answer"))
    async with fake.running():
        upstream = GeminiLive("k", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig(history=history))
        await upstream.send_audio(TURN)
        events = upstream.events()
        await events_until(events, lambda e: isinstance(e, GoAway))
        await upstream.send_audio(TURN)
        seen = await events_until(
            events, lambda e: isinstance(e, OutputTranscript) and e.final and e.text == "rebuilt"
        )
        await upstream.close()
    assert len(fake.connections) == 3  # original, refused resumption, rebuilt
    assert fake.connections[1].setup["sessionResumption"] == {"handle": "handle-1"}
    assert fake.connections[2].setup["sessionResumption"] == {}
    assert fake.connections[0].seeded == [("user", "earlier question"), ("model", "earlier answer")]
    assert fake.connections[2].seeded[:3] == [
        ("user", "earlier question"),
        ("model", "earlier answer"),
        ("user", "first"),
    ]
    assert fake.audio_bytes == 2 * len(TURN)
    assert (upstream.swaps, upstream.rebuilds) == (1, 1)
    assert sleeps.calls == []  # a refused handle is not retried, it is rebuilt
    assert "second" in final_texts(seen, InputTranscript)


async def test_busy_upstream_is_retried_with_backoff(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive([Reply(heard="hi", says="hello")])
    fake.refuse = [503, 429]
    async with fake.running():
        upstream = GeminiLive("k", fake.base_url, sleep=sleeps, backoff=(0.5, 1.0, 2.0))
        await upstream.connect(S2SConfig())
        await upstream.send_audio(TURN)
        seen = await events_until(upstream.events(), lambda e: isinstance(e, TurnComplete))
        await upstream.close()
    assert sleeps.calls == [0.5, 1.0]
    assert final_texts(seen, OutputTranscript) == ["hello"]


async def test_refused_connection_is_an_error_event(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive()
    fake.refuse = [401]
    async with fake.running():
        upstream = GeminiLive("bad-key", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        seen = [e async for e in upstream.events()]
    assert len(seen) == 1 and isinstance(seen[0], UpstreamError)
    assert not seen[0].retryable and "401" in seen[0].message
    assert sleeps.calls == []


async def test_unreachable_upstream_gives_up_after_backoff(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive()
    async with fake.running():
        url = fake.base_url  # the port is closed once the server stops
    upstream = GeminiLive("k", url, sleep=sleeps, backoff=(0.1, 0.2))
    await upstream.connect(S2SConfig())
    seen = [e async for e in upstream.events()]
    assert sleeps.calls == [0.1, 0.2]
    assert isinstance(seen[-1], UpstreamError) and not seen[-1].retryable


def test_missing_key_and_bad_url_are_clear_errors() -> None:
    with pytest.raises(S2SConfigError, match="PARLEY_GEMINI_API_KEY"):
        GeminiLive(None)
    with pytest.raises(S2SConfigError, match="https://"):
        GeminiLive("k", "ftp://example.com")


async def test_dropped_socket_resumes_with_the_last_handle(sleeps: RecordingSleep) -> None:
    fake = FakeGeminiLive(
        [
            Reply(heard="one", says="first answer"),
            Reply(heard="two", says="cut off here", chunks=3, drop_after=0),
            Reply(heard="three", says="still here"),
        ]
    )
    async with fake.running():
        upstream = GeminiLive("k", fake.base_url, sleep=sleeps)
        await upstream.connect(S2SConfig())
        events = upstream.events()
        await upstream.send_audio(TURN)
        await events_until(events, lambda e: isinstance(e, ResumptionHandle))
        await upstream.send_audio(TURN)
        await events_until(events, lambda e: isinstance(e, AudioOut))
        await upstream.send_audio(TURN)  # sent while (or after) the socket dies: kept
        seen = await events_until(
            events, lambda e: isinstance(e, OutputTranscript) and e.final and e.text == "still here"
        )
        await upstream.close()
    assert fake.resumed_with == ["handle-1"]
    assert fake.audio_bytes == 3 * len(TURN)
    assert "three" in final_texts(seen, InputTranscript)
    assert (upstream.swaps, upstream.rebuilds) == (1, 0)
