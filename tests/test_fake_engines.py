"""The benchmark's fake engines keep the spec's timings, text and audio, in virtual time."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from parley.config import ConfigError, load_agents, parse_agent
from parley.engines.base import EngineUnavailable, TextDelta
from parley.testing import FakeClock
from parley.testing.fake_engines import (
    FAKE_ENGINE_NAMES,
    FRAME_BYTES,
    REPLY_TEXT,
    TRANSCRIPT,
    FakeEnergyVAD,
    FakeLLM,
    FakeSTT,
    FakeTTS,
    fake_engine,
    first_sentence_tokens,
    is_fake_engine,
    make_fake_engines,
    reply_tokens,
    word_count,
)

BENCH_AGENTS = Path(__file__).resolve().parents[1] / "bench" / "agents"


@pytest.fixture
def vt() -> FakeClock:
    """One actor sleeping on the virtual clock: each sleep moves it (and is recorded)."""
    return FakeClock(start=50.0, autojump=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 6)


def constant_frame(value: int, samples: int = FRAME_BYTES // 2) -> bytes:
    return np.full(samples, value, dtype="<i2").tobytes()


# --- LLM --------------------------------------------------------------------------------


async def test_llm_first_token_at_200ms_then_one_word_every_10ms(vt: FakeClock) -> None:
    llm = FakeLLM(clock=vt)
    t0 = vt.monotonic()
    arrivals: list[tuple[float, str]] = []
    async for chunk in llm.stream([{"role": "user", "content": TRANSCRIPT}], []):
        assert isinstance(chunk, TextDelta)
        arrivals.append((ms(vt.monotonic() - t0), chunk.text))

    assert arrivals[0] == (200.0, "Sure,")
    assert [t for t, _ in arrivals] == [200.0 + 10 * i for i in range(60)]
    assert "".join(text for _, text in arrivals) == REPLY_TEXT
    assert all(text.startswith(" ") for _, text in arrivals[1:])


def test_reply_is_60_words_in_4_sentences_first_of_6_tokens() -> None:
    tokens = reply_tokens()
    assert len(tokens) == 60 == word_count(REPLY_TEXT)
    ends = [i for i, tok in enumerate(tokens) if tok.rstrip().endswith((".", "?", "!"))]
    assert len(ends) == 4 and ends[-1] == 59
    assert first_sentence_tokens() == 6
    assert "".join(tokens[:6]) == "Sure, I can help with that."


async def test_llm_keeps_an_absolute_schedule_when_the_consumer_is_slow(
    vt: FakeClock,
) -> None:
    llm = FakeLLM(clock=vt)
    t0 = vt.monotonic()
    arrivals: list[float] = []
    async for _ in llm.stream([], []):
        arrivals.append(ms(vt.monotonic() - t0))
        if len(arrivals) == 1:
            vt.advance(0.035)  # the consumer spends 35 ms on the first token
        if len(arrivals) == 6:
            break
    # tokens 2..4 were due at 210, 220, 230 ms: already late, so they come at once
    assert arrivals == [200.0, 235.0, 235.0, 235.0, 240.0, 250.0]


async def test_llm_stream_starts_its_clock_on_first_iteration(vt: FakeClock) -> None:
    llm = FakeLLM(clock=vt)
    stream = llm.stream([], [])
    vt.advance(1.0)
    t0 = vt.monotonic()
    first = await anext(stream)
    assert first == TextDelta("Sure,")
    assert ms(vt.monotonic() - t0) == 200.0
    await stream.aclose()


# --- STT --------------------------------------------------------------------------------


async def test_stt_finish_returns_the_transcript_after_100ms(vt: FakeClock) -> None:
    stt = FakeSTT(clock=vt)
    stream = stt.open_stream()
    assert await stream.push(constant_frame(3000)) is None
    vt.advance(2.0)
    t0 = vt.monotonic()
    assert await stream.finish() == TRANSCRIPT
    assert ms(vt.monotonic() - t0) == 100.0
    assert vt.sleeps == [pytest.approx(0.1)]
    stream.cancel()
    stream.set_mode("yes_no")
    await stream.close()
    assert stt.capabilities.sample_rate == 16000


async def test_stt_transcribe_takes_the_same_100ms(vt: FakeClock) -> None:
    stt = FakeSTT(clock=vt)
    t0 = vt.monotonic()
    assert await stt.transcribe(b"\x00" * 3200) == TRANSCRIPT
    assert ms(vt.monotonic() - t0) == 100.0


def test_stt_rejects_an_unknown_mode(vt: FakeClock) -> None:
    stream = FakeSTT(clock=vt).open_stream()
    with pytest.raises(ValueError, match="unknown STT mode 'shouting'"):
        stream.set_mode("shouting")  # type: ignore[arg-type]


# --- TTS --------------------------------------------------------------------------------


async def synthesize_timed(tts: FakeTTS, vt: FakeClock, text: str) -> list[tuple[float, bytes]]:
    t0 = vt.monotonic()
    return [(ms(vt.monotonic() - t0), chunk) async for chunk in tts.synthesize(text)]


async def test_tts_first_40ms_chunk_at_80ms_then_one_every_10ms(vt: FakeClock) -> None:
    tts = FakeTTS(clock=vt)
    chunks = await synthesize_timed(tts, vt, "Sure, I can help with that.")
    # 6 words = 600 ms of audio = 15 chunks of 40 ms (1280 bytes)
    assert [t for t, _ in chunks] == [80.0 + 10 * i for i in range(15)]
    assert {len(c) for _, c in chunks} == {1280}
    assert tts.capabilities.sample_rate == 16000


async def test_tts_audio_is_100ms_per_word_with_a_short_last_chunk(vt: FakeClock) -> None:
    tts = FakeTTS(clock=vt)
    chunks = await synthesize_timed(tts, vt, "one two three")
    # 300 ms = 4800 samples = 7 chunks of 640 samples + 320
    assert [len(c) for _, c in chunks] == [1280] * 7 + [640]
    assert [t for t, _ in chunks][-1] == 150.0
    assert await synthesize_timed(tts, vt, "   ") == []


async def test_tts_reply_is_6_seconds_of_continuous_440hz_sine(vt: FakeClock) -> None:
    tts = FakeTTS(clock=vt)
    pcm = b"".join([c async for c in tts.synthesize(REPLY_TEXT)])
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    assert samples.size == 6 * 16000
    n = np.arange(samples.size)
    expected = 2000 * np.sin(2 * math.pi * 440 * n / 16000)
    assert np.max(np.abs(samples - expected)) <= 1.0  # phase-continuous across chunks
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 16000 / samples.size == pytest.approx(440, abs=1)


async def test_tts_stops_when_the_consumer_closes_it(vt: FakeClock) -> None:
    tts = FakeTTS(clock=vt)
    stream = tts.synthesize(REPLY_TEXT)
    t0 = vt.monotonic()
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    assert ms(vt.monotonic() - t0) == 90.0
    assert len(vt.sleeps) == 2


# --- VAD --------------------------------------------------------------------------------


def test_vad_threshold_is_rms_strictly_above_100() -> None:
    vad = FakeEnergyVAD()
    stream = vad.open_stream()
    assert stream.process(constant_frame(0)) == 0.0
    assert stream.process(constant_frame(100)) == 0.0  # RMS exactly 100 is not speech
    assert stream.process(constant_frame(101)) == 1.0
    assert stream.process(constant_frame(-101)) == 1.0
    assert stream.process(constant_frame(99)) == 0.0
    assert vad.capabilities.sample_rate == 16000
    assert vad.capabilities.window_samples == 320


def test_vad_decides_once_per_whole_20ms_frame() -> None:
    stream = FakeEnergyVAD().open_stream()
    loud = constant_frame(3000)
    assert stream.process(loud[:300]) == 0.0  # no whole frame yet
    assert stream.process(loud[300:]) == 1.0
    # 1.5 frames: the whole quiet frame decides, the half frame waits
    assert stream.process(constant_frame(0) + loud[:320]) == 0.0
    assert stream.process(loud[320:]) == 1.0
    # several frames in one push: the latest frame's decision
    assert stream.process(loud + constant_frame(0)) == 0.0
    assert stream.process(constant_frame(0) + loud) == 1.0


def test_vad_reset_drops_the_partial_frame_and_the_last_decision() -> None:
    stream = FakeEnergyVAD().open_stream()
    loud = constant_frame(3000)
    stream.process(loud + loud[:100])
    stream.reset()
    assert stream.process(b"") == 0.0
    assert stream.process(loud[100:]) == 0.0  # the old 100 bytes are gone: no frame yet
    assert stream.process(loud[:100]) == 1.0


# --- selection by name ------------------------------------------------------------------


def test_fake_engine_builds_each_kind_by_name(vt: FakeClock) -> None:
    assert isinstance(fake_engine("llm", "fake", clock=vt), FakeLLM)
    assert isinstance(fake_engine("stt", "fake"), FakeSTT)
    assert isinstance(fake_engine("tts", "fake"), FakeTTS)
    assert isinstance(fake_engine("vad", "fake_energy"), FakeEnergyVAD)
    assert is_fake_engine("vad", "fake_energy")
    assert not is_fake_engine("vad", "silero")
    assert dict(FAKE_ENGINE_NAMES) == {
        "llm": "fake",
        "stt": "fake",
        "tts": "fake",
        "vad": "fake_energy",
    }


def test_fake_engine_names_the_problem_for_unknown_names() -> None:
    with pytest.raises(EngineUnavailable, match="no fake vad engine named 'fake'") as err:
        fake_engine("vad", "fake")
    assert err.value.code == "unknown_engine"
    with pytest.raises(EngineUnavailable, match="unknown engine kind 'asr'"):
        fake_engine("asr", "fake")


async def test_make_fake_engines_share_the_injected_time(vt: FakeClock) -> None:
    engines = make_fake_engines(clock=vt)
    voice = engines.engine_set()
    assert (voice.stt, voice.tts, voice.vad) == (engines.stt, engines.tts, engines.vad)
    t0 = vt.monotonic()
    assert await engines.stt.open_stream().finish() == TRANSCRIPT
    assert isinstance(await anext(engines.llm.stream([], [])), TextDelta)
    assert ms(vt.monotonic() - t0) == 300.0


# --- the bench agent file ---------------------------------------------------------------


def test_bench_agent_file_selects_the_fakes_with_the_spec_timings() -> None:
    agent = load_agents(BENCH_AGENTS)["bench"]
    assert agent.brain == "llm"
    assert agent.greeting_mode == "none"
    assert agent.tools == []
    assert dict(agent.engines) == dict(FAKE_ENGINE_NAMES)
    for kind in ("stt", "tts", "vad"):
        assert is_fake_engine(kind, getattr(agent.voice, kind))
    voice = agent.voice
    assert (voice.start_secs, voice.stop_secs) == (0.2, 0.2)
    assert voice.min_utterance_secs == 0
    assert voice.barge_in_min_secs == 0.2


def test_agent_engines_reject_an_unknown_kind() -> None:
    text = "name: x\nengines:\n  llm: fake\n  asr: fake\n"
    with pytest.raises(ConfigError, match=r"x\.yaml:4: engines\.asr"):
        parse_agent(text, "x.yaml")
