"""Smart Turn v3 runner: the numpy Whisper front end always; the real model when it is
installed (``PARLEY_SMART_TURN_MODEL``, or inside a ``pipecat-ai`` package), batched
across callers on a worker thread."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from parley.config import AgentSpec
from parley.engines.base import EngineUnavailable
from parley.engines.factory import EngineHub
from parley.engines.smart_turn import (
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    LogMelFrontEnd,
    SmartTurnBatcher,
    SmartTurnModel,
    find_model,
    mel_filters,
)
from parley.testing.speech import speak_pcm16k


def tone(hz: float, secs: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * secs)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def speech(text: str) -> np.ndarray:
    return np.frombuffer(speak_pcm16k(text), dtype=np.int16).astype(np.float32) / 32768.0


# --- front end ------------------------------------------------------------------------


def test_mel_filters_cover_0_to_8khz_in_order() -> None:
    filters = mel_filters()
    assert filters.shape == (N_FFT_BINS := 201, N_MELS)
    assert (filters >= 0).all()
    peaks = filters.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # filter k peaks at a higher bin than k - 1
    assert peaks[0] <= 2 and peaks[-1] >= N_FFT_BINS - 15
    assert (filters.sum(axis=0) > 0).all()  # no empty filter


def test_a_tone_lights_the_mel_bin_of_its_frequency() -> None:
    front = LogMelFrontEnd()
    low, high = front(tone(300, 2.0)), front(tone(3000, 2.0))
    assert low.shape == high.shape == (N_MELS, N_FRAMES)
    # the last second is the tone (the audio is padded in front to 8 s)
    low_bin, high_bin = low[:, -50:].mean(axis=1).argmax(), high[:, -50:].mean(axis=1).argmax()
    assert low_bin < 25 < 40 < high_bin
    # Whisper's dynamic range: at most 8 decades below the peak, then scaled
    assert low.max() - low.min() <= 2.0 + 1e-5


def test_the_front_end_keeps_the_last_8_seconds() -> None:
    front = LogMelFrontEnd()
    rng = np.random.default_rng(1)
    tail = (rng.standard_normal(SAMPLE_RATE * 8) * 0.1).astype(np.float32)
    longer = np.concatenate([tone(500, 3.0), tail])
    np.testing.assert_allclose(front(longer), front(tail), atol=1e-5)
    assert front(np.zeros(0, np.float32)).shape == (N_MELS, N_FRAMES)  # empty: all padding


def test_gain_does_not_change_the_features() -> None:
    front = LogMelFrontEnd()
    clip = speech("thank you very much")
    np.testing.assert_allclose(front(clip), front(clip * 0.25), atol=1e-3)


# --- model file -------------------------------------------------------------------------


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="smart_turn_model: no such file"):
        find_model(tmp_path / "nope.onnx")


def test_a_file_that_is_not_the_model_is_rejected(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not an onnx file")
    with pytest.raises(EngineUnavailable, match="cannot load Smart Turn model"):
        SmartTurnModel(bogus)


def installed_model() -> Path:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    path = find_model(os.environ.get("PARLEY_SMART_TURN_MODEL") or None)
    if path is None:
        pytest.skip("no Smart Turn model: set PARLEY_SMART_TURN_MODEL or install pipecat-ai")
    return path


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    return SmartTurnModel(installed_model())


def test_the_model_scores_speech_and_batches_rows_independently(model: SmartTurnModel) -> None:
    assert model.info.input_shape[1:] == (N_MELS, N_FRAMES)
    done = np.concatenate([speech("thank you very much"), np.zeros(3200, np.float32)])
    other = speech("I would like a table for four people tonight")
    one = model.score_many([done])
    both = model.score_many([done, other])
    assert 0.0 <= one[0] <= 1.0 and 0.0 <= both[1] <= 1.0
    assert both[0] == pytest.approx(one[0], abs=1e-4)
    assert one[0] > 0.5  # a finished "thank you very much" sounds finished


async def test_concurrent_requests_share_forward_passes(model: SmartTurnModel) -> None:
    batcher = SmartTurnBatcher(model)
    clips = [speech(t) for t in ("thank you", "yes please", "my name is john", "okay")]
    alone = model.score_many(clips)
    scores = await asyncio.gather(*(batcher.score(c) for c in clips))
    assert scores == pytest.approx(alone, abs=1e-4)
    assert batcher.clips == 4 and batcher.batches == 1  # one loop turn, one pass
    more = await batcher.score(clips[0])
    assert more == pytest.approx(alone[0], abs=1e-4)
    assert batcher.batches == 2


def test_the_model_is_found_inside_an_installed_pipecat_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "pipecat" / "audio" / "turn" / "smart_turn" / "data"
    data.mkdir(parents=True)
    (tmp_path / "pipecat" / "__init__.py").write_text("raise ImportError('never imported')\n")
    for name in ("smart-turn-v3.0.onnx", "smart-turn-v3.2-cpu.onnx", "other.onnx"):
        (data / name).write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "pipecat", raising=False)
    assert find_model() == data / "smart-turn-v3.2-cpu.onnx"
    assert find_model(data / "smart-turn-v3.0.onnx") == data / "smart-turn-v3.0.onnx"


# --- one model per process, through the EngineHub ------------------------------------------


def fake_agent(name: str, turn_detection: str) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "name": name,
            "brain": "rules",
            "engines": {"stt": "fake", "tts": "fake", "vad": "fake_energy"},
            "voice": {"turn_detection": turn_detection},
        }
    )


async def test_the_hub_shares_one_batcher_between_smart_agents() -> None:
    path = installed_model()
    agents = {n: fake_agent(n, d) for n, d in [("a", "smart"), ("b", "smart"), ("c", "silence")]}
    hub = EngineHub(agents, smart_turn_model=path)
    a, b, c = [await hub.engines_for(n) for n in "abc"]
    assert isinstance(a.end_of_turn, SmartTurnBatcher) and a.end_of_turn is b.end_of_turn
    assert c.end_of_turn is None  # silence mode never asks
    t = np.arange(16000 * 2) / 16000
    score = await a.end_of_turn.score((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    assert 0.0 <= score <= 1.0


async def test_the_hub_without_a_model_uses_the_transcript_alone(tmp_path: Path) -> None:
    hub = EngineHub({"a": fake_agent("a", "smart")})
    if find_model() is not None:
        pytest.skip("a pipecat-ai package with the model is installed")
    assert (await hub.engines_for("a")).end_of_turn is None
    missing = EngineHub({"a": fake_agent("a", "smart")}, smart_turn_model=tmp_path / "no.onnx")
    with pytest.raises(EngineUnavailable, match="no such file"):
        await missing.engines_for("a")


async def test_the_hub_never_loads_the_model_for_a_realtime_agent(tmp_path: Path) -> None:
    """A speech-to-speech agent takes no turns itself: even with the default
    ``turn_detection: smart`` and a model setting naming a missing file (which fails a
    cascaded agent), its engines come without an end-of-turn model."""
    agent = AgentSpec.model_validate(
        {
            "name": "rt",
            "brain": "realtime",
            "engines": {"s2s": "gemini_live", "stt": "fake", "tts": "fake", "vad": "fake_energy"},
        }
    )
    assert agent.voice.turn_detection == "smart"
    hub = EngineHub({"rt": agent}, smart_turn_model=tmp_path / "no.onnx")
    assert (await hub.engines_for("rt")).end_of_turn is None
