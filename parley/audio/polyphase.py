"""Streaming integer-ratio rate changes (2x, 3x, 6x…) that hold back almost nothing.

soxr's streaming resampler holds back up to ~22 ms at 16 ⇄ 48 kHz and ~60 ms at
8 ⇄ 16 kHz (``parley.audio.resample``); a live bridge between two people would add
that to every word. For integer ratios this module does it with one linear-phase
windowed-sinc low-pass (Kaiser window, cutoff at the lower rate's Nyquist, ``TAPS_PER``
taps per unit of the ratio) at the higher rate:

- ``Interpolator(in_rate, factor)``: zero-stuffing, then the filter (gain ``factor``),
  computed as ``factor`` polyphase branches: every chunk gives ``factor`` times its
  samples at once.
- ``Decimator(in_rate, factor)``: the filter, then every ``factor``-th sample; a chunk
  gives ``len // factor`` samples at once (a remainder waits for the next chunk).

The group delay is ``(taps - 1) / 2`` samples at the higher rate (~3 ms at 48 kHz for
3x). Same interface as ``Resampler`` (``process``, ``flush``, ``reset``).
"""

from __future__ import annotations

import numpy as np

from parley.audio.pcm import SAMPLE_WIDTH, pcm_to_array

TAPS_PER = 96
KAISER_BETA = 8.0


def low_pass(factor: int) -> np.ndarray:
    """Unity-gain low-pass at ``1 / (2 * factor)`` of the (higher) rate, odd length."""
    taps = TAPS_PER * factor - 1
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(n / factor) * np.kaiser(taps, KAISER_BETA)
    return np.asarray(h / h.sum(), dtype=np.float64)


def _to_pcm(x: np.ndarray) -> bytes:
    return bytes(np.clip(np.rint(x), -32768, 32767).astype("<i2").tobytes())


def _samples(pcm: bytes | bytearray | memoryview) -> np.ndarray:
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    return pcm_to_array(pcm).astype(np.float64)


class Interpolator:
    """Streaming ``factor``x upsampling of PCM16 mono (module docstring)."""

    def __init__(self, in_rate: int, factor: int) -> None:
        if factor < 2:
            raise ValueError(f"factor must be at least 2, got {factor}")
        self.in_rate = in_rate
        self.out_rate = in_rate * factor
        self.factor = factor
        h = low_pass(factor) * factor
        h = np.append(h, np.zeros(-len(h) % factor))  # equal-length branches
        self._branches = [h[k::factor].copy() for k in range(factor)]
        self._history = np.zeros(len(self._branches[0]) - 1, dtype=np.float64)

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        x = _samples(pcm)
        if x.size == 0:
            return b""
        buf = np.concatenate((self._history, x))
        self._history = buf[len(buf) - len(self._history) :]
        out = np.empty(self.factor * x.size, dtype=np.float64)
        for k, branch in enumerate(self._branches):
            out[k :: self.factor] = np.convolve(buf, branch, mode="valid")
        return _to_pcm(out)

    def flush(self) -> bytes:
        return b""

    def reset(self) -> None:
        self._history[:] = 0.0


class Decimator:
    """Streaming ``factor``:1 downsampling of PCM16 mono (module docstring)."""

    def __init__(self, in_rate: int, factor: int) -> None:
        if factor < 2 or in_rate % factor:
            raise ValueError(f"cannot divide {in_rate} Hz by {factor}")
        self.in_rate = in_rate
        self.out_rate = in_rate // factor
        self.factor = factor
        self._filter = low_pass(factor)
        self._history = np.zeros(len(self._filter) - 1, dtype=np.float64)
        self._rest = np.zeros(0, dtype=np.float64)  # samples waiting for a full group

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        x = np.concatenate((self._rest, _samples(pcm)))
        usable = x.size - x.size % self.factor
        self._rest = x[usable:]
        if usable == 0:
            return b""
        buf = np.concatenate((self._history, x[:usable]))
        self._history = buf[len(buf) - len(self._history) :]
        return _to_pcm(np.convolve(buf, self._filter, mode="valid")[:: self.factor])

    def flush(self) -> bytes:
        return b""

    def reset(self) -> None:
        self._history[:] = 0.0
        self._rest = np.zeros(0, dtype=np.float64)
