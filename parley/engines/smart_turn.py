"""Smart Turn v3 audio end-of-turn model: onnxruntime plus a numpy Whisper log-mel front end.

The model (BSD-2-Clause, ~8.7 MB) judges from the last 8 s of a user's speech whether
the turn sounds finished. Its input is ``input_features[batch, 80, 800]``: Whisper-style
log-mel features of 16 kHz audio (80 Slaney mel bins, 25 ms Hann window, 10 ms hop),
the audio cut to its last 8 s or zero-padded in front, the waveform normalised to zero
mean and unit variance first. Its output ``[batch, 1]`` is the probability that the turn
is complete.

The model file is never downloaded. ``find_model`` takes the ``smart_turn_model``
setting, else looks inside an installed ``pipecat-ai`` package
(``pipecat/audio/turn/smart_turn/data/smart-turn-v3*.onnx``) without importing it.
onnxruntime is the ``onnx`` extra (``pip install 'parley[onnx]'``).

One ``SmartTurnModel`` (one onnxruntime session) serves every connection through a
``SmartTurnBatcher``: ``await batcher.score(audio)`` queues the request; requests made
while an inference runs are scored together in the next one, on a worker thread, so the
event loop never waits for the model and a burst of pauses costs one forward pass.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from parley.engines.base import EngineUnavailable

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW_SECS = 8
N_SAMPLES = SAMPLE_RATE * WINDOW_SECS  # 128000
N_FFT = 400
HOP = 160
N_MELS = 80
N_FRAMES = N_SAMPLES // HOP  # 800
_MEL_FLOOR = 1e-10
_PIPECAT_DATA = ("audio", "turn", "smart_turn", "data")

FloatArray = npt.NDArray[np.float32]


# --- front end --------------------------------------------------------------------------


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    linear = hz * 3.0 / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(hz < 1000.0, linear, log_part)


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear = mel * 200.0 / 3.0
    log_part = 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    return np.where(mel < 15.0, linear, log_part)


def mel_filters() -> npt.NDArray[np.float64]:
    """Slaney-normalised triangular filters, ``[N_FFT // 2 + 1, N_MELS]``, 0–8 kHz."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    edges_mel = np.linspace(
        _hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0], N_MELS + 2
    )
    edges = _mel_to_hz(edges_mel)
    width = np.diff(edges)
    offset = edges[None, :] - fft_hz[:, None]
    rising = -offset[:, :-2] / width[:-1]
    falling = offset[:, 2:] / width[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


class LogMelFrontEnd:
    """Whisper log-mel features of the last 8 s of 16 kHz audio (see the module docstring)."""

    def __init__(self) -> None:
        self._filters = mel_filters().astype(np.float32)  # [201, 80]
        n = np.arange(N_FFT)
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(np.float32)

    def __call__(self, audio: npt.NDArray[np.floating[Any]]) -> FloatArray:
        """``audio``: mono float samples in [-1, 1] at 16 kHz, any length → ``[80, 800]``."""
        x = np.asarray(audio, dtype=np.float32).reshape(-1)[-N_SAMPLES:]
        if len(x) < N_SAMPLES:
            x = np.concatenate([np.zeros(N_SAMPLES - len(x), np.float32), x])
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        padded = np.pad(x, N_FFT // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:N_FRAMES]
        spectrum = np.fft.rfft(frames * self._window, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # [800, 201]
        mel = np.maximum(_MEL_FLOOR, power @ self._filters).T  # [80, 800]
        log_mel = np.log10(mel)
        log_mel = np.maximum(log_mel, log_mel.max() - 8.0)
        features: FloatArray = ((log_mel + 4.0) / 4.0).astype(np.float32)
        return features


# --- model ------------------------------------------------------------------------------


def pipecat_model() -> Path | None:
    """The Smart Turn v3 file inside an installed ``pipecat-ai`` package, if any."""
    try:
        spec = importlib.util.find_spec("pipecat")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        found = sorted(Path(root, *_PIPECAT_DATA).glob("smart-turn-v3*.onnx"))
        if found:
            return found[-1]  # the highest version
    return None


def find_model(setting: str | Path | None = None) -> Path | None:
    """The model file: ``setting`` if given (it must exist), else pipecat's, else None."""
    if setting:
        path = Path(setting).expanduser()
        if not path.is_file():
            raise EngineUnavailable(f"smart_turn_model: no such file {path}")
        return path
    return pipecat_model()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: Path
    input_name: str
    input_shape: tuple[int | str | None, ...]


class SmartTurnModel:
    """One onnxruntime session; ``predict`` is blocking (call it off the event loop)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineUnavailable(
                "the Smart Turn model needs onnxruntime: pip install 'parley[onnx]'"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EngineUnavailable(f"cannot load Smart Turn model {path}: {exc}") from exc
        first = self._session.get_inputs()[0]
        shape = tuple(first.shape)
        if len(shape) != 3 or shape[1:] != (N_MELS, N_FRAMES):
            raise EngineUnavailable(
                f"{path} is not a Smart Turn v3 model: input {first.name}{list(shape)}, "
                f"expected [batch, {N_MELS}, {N_FRAMES}]"
            )
        self.info = ModelInfo(Path(path), first.name, shape)
        self.front_end = LogMelFrontEnd()

    def predict(self, features: FloatArray) -> npt.NDArray[np.float32]:
        """``features[batch, 80, 800]`` → probability of a finished turn per row."""
        (out,) = self._session.run(None, {self.info.input_name: features})
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def score_many(self, clips: list[FloatArray]) -> list[float]:
        """Front end and model for several clips in one forward pass (blocking)."""
        features = np.stack([self.front_end(clip) for clip in clips])
        return [float(p) for p in self.predict(features)]


class SmartTurnBatcher:
    """Shares one model between connections; see the module docstring."""

    def __init__(self, model: SmartTurnModel, max_batch: int = 16) -> None:
        self._model = model
        self._max_batch = max_batch
        self._pending: list[tuple[FloatArray, asyncio.Future[float]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.clips = 0

    def score(self, audio: FloatArray) -> asyncio.Future[float]:
        """Probability that ``audio`` (16 kHz float, the utterance so far) ends a turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._pending.append((np.asarray(audio, dtype=np.float32)[-N_SAMPLES:], future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._pending:
                await asyncio.sleep(0)  # let this loop turn's other requests join
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                clips = [clip for clip, _ in batch]
                try:
                    probs = await asyncio.to_thread(self._model.score_many, clips)
                except Exception as exc:  # every waiting connection hears about it
                    log.exception("Smart Turn batch of %d failed", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.batches += 1
                self.clips += len(batch)
                for (_, future), prob in zip(batch, probs, strict=True):
                    if not future.done():
                        future.set_result(prob)
        finally:
            self._running = False
