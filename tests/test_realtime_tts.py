"""``audio.output.voice`` / ``speed`` and ``prefix_padding_ms`` of a Realtime session, applied:
the official ``openai`` SDK over a real socket, the demo agent speaking with espeak-ng."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley.channels.realtime_tts import espeak_rate, espeak_voice
from parley.channels.realtime_voice import tuned_agent, voice_shape
from parley.config import AgentSpec
from parley.engines.fake import make_fake_engines
from parley.testing.fake_openai import FakeOpenAIServer, Reply
from parley.voice.input import VoiceInput
from parley.voice.io import VoiceOptions
from parley.voice.turn_taking import TurnTakingConfig
from tests.test_realtime_voice import config_of, spoken_answer
from tests.test_realtime_ws import next_raw, realtime_server, until

openai = pytest.importorskip("openai")

QUESTION = "When are you open?"


async def answer_audio(base_url: str, output: dict[str, Any] | None) -> tuple[str, bytes]:
    """One connection: ``session.update`` with ``audio.output`` (if any), then a typed
    question answered aloud; the answer's transcript and PCM16 24 kHz audio."""
    client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
    async with client.realtime.connect(model="demo") as conn:
        await next_raw(conn)
        if output is not None:
            await conn.session.update(session={"type": "realtime", "audio": {"output": output}})
            updated = (await until(conn, "session.updated"))[-1]
            echoed = updated["session"]["audio"]["output"]
            assert {k: echoed[k] for k in output} == output
        events = await spoken_answer(conn, QUESTION)
    await client.close()
    assert events[-1]["response"]["status"] == "completed"
    said = next(e for e in events if e["type"] == "response.output_audio_transcript.done")
    return said["transcript"], audio_of(events)


def median_pitch_hz(pcm: bytes, rate: int = 24000) -> float:
    """The median fundamental frequency of the voiced 40 ms frames (autocorrelation
    peak between 70 and 400 Hz)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    size, low, high = rate // 25, rate // 400, rate // 70
    pitches = []
    for start in range(0, len(samples) - size, size):
        frame = samples[start : start + size] - samples[start : start + size].mean()
        if np.sqrt(np.mean(frame * frame)) < 500:
            continue
        corr = np.correlate(frame, frame, "full")[size - 1 :]
        lag = low + int(np.argmax(corr[low:high]))
        if corr[lag] > 0.3 * corr[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


async def test_the_session_voice_and_speed_reach_the_agents_espeak(tmp_path: Path) -> None:
    outputs = [None, {"speed": 1.5}, {"voice": "coral"}, {"voice": "en-us+f3"},
               {"voice": "no-such-voice"}]  # fmt: skip
    async with realtime_server(tmp_path) as (base_url, _, _services):
        # five independent sessions at once (each answer plays out in real time)
        answers = await asyncio.gather(*(answer_audio(base_url, o) for o in outputs))
    (text, default), (_, fast), (_, coral), (_, f3), (_, unknown) = answers
    assert len(text.split()) > 4 and len(default) > 48_000  # over a second of speech
    # speed 1.5: the agent's 175 words/min become 262; the same words take about 2/3
    assert 0.55 < len(fast) / len(default) < 0.8
    # an OpenAI voice name is a fixed espeak variant of the agent's language
    # (espeak is not bit-exact from run to run: compare pitch and length)
    pitch = {name: median_pitch_hz(pcm) for name, pcm in [("default", default), ("coral", coral)]}
    assert abs(median_pitch_hz(f3) / pitch["coral"] - 1) < 0.05
    assert abs(len(f3) / len(coral) - 1) < 0.01
    assert pitch["coral"] > 1.4 * pitch["default"]  # f3 is a female voice, en-us a male one
    # a name espeak does not know: the agent's own voice speaks, the session goes on
    assert abs(median_pitch_hz(unknown) / pitch["default"] - 1) < 0.05
    assert abs(len(unknown) / len(default) - 1) < 0.01


def test_voice_names_and_speed_map_onto_espeak() -> None:
    assert espeak_voice("en-us", "coral") == "en-us+f3"
    assert espeak_voice("fr+m2", "Echo") == "fr+m1"  # the agent's language, OpenAI's voice
    assert espeak_voice("en-us", "en-gb") == "en-gb"  # an espeak name is taken as it is
    assert [espeak_rate(175, s) for s in (0.25, 1.0, 1.5)] == [80, 175, 262]
    assert espeak_rate(400, 1.5) == 450  # within espeak's range


async def test_prefix_padding_sets_the_pre_roll() -> None:
    agent = AgentSpec.model_validate({"name": "a", "instructions": "x"})
    td = {"type": "server_vad", "prefix_padding_ms": 500}
    shape = voice_shape(config_of({"audio": {"input": {"turn_detection": td}}}))
    config = TurnTakingConfig.from_voice_spec(tuned_agent(agent, shape).voice)
    assert config.prefix_padding_secs == 0.5
    engines = make_fake_engines().engine_set()
    voice_input = VoiceInput(config, VoiceOptions(), engines, listener=None)  # type: ignore[arg-type]
    # start_secs (0.2) + the padding: the audio the recogniser gets from before the onset
    assert voice_input.preroll.maxlen == 35
    # OpenAI's default (300 ms) is Parley's own pre-roll: the agent is left as it is
    default = voice_shape(
        config_of({"audio": {"input": {"turn_detection": {"type": "server_vad"}}}})
    )
    assert default.prefix_padding_secs is None
    assert "prefix_padding_secs" not in (tuned_agent(agent, default).voice.model_extra or {})
    assert TurnTakingConfig.from_voice_spec(agent.voice).prefix_padding_secs == 0.3


async def test_a_voice_change_during_a_spoken_response_waits_for_its_end(
    tmp_path: Path, fake_openai: FakeOpenAIServer
) -> None:
    """``session.update`` with another voice while the agent speaks: the running response
    goes on to its end in its voice (the voice session is not rebuilt under it); the next
    response speaks with the new voice."""
    story = "Once upon a time there was a king. He had three clever daughters."
    fake_openai.script(Reply.text(story), Reply.text("The eldest was clever."))
    async with realtime_server(
        tmp_path, llm_base_url=fake_openai.base_url, llm_model="fake-model"
    ) as (base_url, _, _services):
        client = openai.AsyncOpenAI(api_key="anything", base_url=f"{base_url}/v1")
        async with client.realtime.connect(model="demo") as conn:
            await next_raw(conn)
            await conn.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "A story"}],
                }
            )
            await until(conn, "conversation.item.done")
            await conn.response.create()
            first = await until(conn, "response.output_audio.delta")
            await conn.session.update(
                session={"type": "realtime", "audio": {"output": {"voice": "coral"}}}
            )
            first += await until(conn, "response.done")
            assert first[-1]["response"]["status"] == "completed"
            said = next(e for e in first if e["type"] == "response.output_audio_transcript.done")
            assert said["transcript"] == story
            before = audio_of(first)
            assert len(before) > 3 * 48_000 and median_pitch_hz(before) < 140  # all en-us
            events = await spoken_answer(conn, "Go on")
        assert events[-1]["response"]["status"] == "completed"
        assert median_pitch_hz(audio_of(events)) > 160  # en-us+f3 now
        await client.close()


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
