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

- ``RationalResampler(in_rate, out_rate)``: any ratio ``L/M`` (24 → 16 kHz is 2/3,
  16 → 24 kHz 3/2): zero-stuffing by ``L``, the filter (cutoff at the lower rate's
  Nyquist), every ``M``-th sample, done as one polyphase step (output ``n`` is branch
  ``n·M mod L`` on the input up to sample ``⌊n·M / L⌋``). An output leaves as soon as
  its last input sample has come, so a chunk holds back under one input sample:
  20 ms in gives 20 ms out, a whole VAD frame at once. Its content lags by the group
  delay; ``flush`` gives no tail, so a stream keeps soxr's length (``len · L / M``:
  phone marks count on it) and loses the filter's last ~3 ms.

The group delay is ``(taps - 1) / 2`` samples at the higher rate (~3 ms at 48 kHz for
3x and for 2/3 and 3/2). Same interface as ``Resampler`` (``process``, ``flush``,
``reset``).
"""

from __future__ import annotations

from math import gcd

import numpy as np

from parley.audio.pcm import SAMPLE_WIDTH, pcm_to_array

TAPS_PER = 96
KAISER_BETA = 8.0
MAX_BRANCH_LOOP = 8  # RationalResampler: up to this L, one matrix product per branch


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


class RationalResampler:
    """Streaming ``out_rate / in_rate`` resampling of PCM16 mono (module docstring)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0 or in_rate == out_rate:
            raise ValueError(f"cannot resample {in_rate} Hz to {out_rate} Hz")
        self.in_rate = in_rate
        self.out_rate = out_rate
        common = gcd(in_rate, out_rate)
        self.up, self.down = out_rate // common, in_rate // common
        h = low_pass(max(self.up, self.down)) * self.up
        self.taps = len(h)
        h = np.append(h, np.zeros(-len(h) % self.up))
        # branch p, reversed: a window of input samples (oldest first) @ branch = output
        branches = [h[p :: self.up][::-1] for p in range(self.up)]
        self._branches = np.stack(branches).astype(np.float32)
        self._width = self._branches.shape[1]
        self._history = np.zeros(self._width - 1, dtype=np.float32)
        self._in = 0  # input samples taken (modulo whole periods)
        self._out = 0  # output samples given (modulo whole periods)
        # small L: one matrix per ``out mod L`` that makes L outputs from one window
        self._periods = [self._period(out) for out in range(self.up)]
        self._span = self._width + self.down

    def _period(self, out: int) -> np.ndarray:
        """Column p: the branch of output ``out + p``, at its window's offset in a
        window ``width + M`` long that starts where output ``out``'s does."""
        matrix = np.zeros((self._width + self.down, self.up), dtype=np.float32)
        first = out * self.down // self.up
        for p in range(self.up):
            step = (out + p) * self.down
            at = step // self.up - first
            matrix[at : at + self._width, p] = self._branches[step % self.up]
        return matrix

    @property
    def delay_s(self) -> float:
        """The filter's group delay in seconds (it is linear-phase)."""
        return (self.taps - 1) / 2 / (self.up * self.in_rate)

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        y = self._run(pcm_to_array(pcm))
        np.rint(y, out=y)
        np.clip(y, -32768, 32767, out=y)
        return bytes(y.astype("<i2").tobytes())

    def _run(self, x: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return np.zeros(0, dtype=np.float32)
        keep = self._history.size
        # contiguous for the windows; zeros after the input for a last, partial period
        buf = np.zeros(keep + x.size + self.down + self.up + 1, dtype=np.float32)
        buf[:keep] = self._history
        buf[keep : keep + x.size] = x
        self._history = buf[x.size : keep + x.size]
        total = self._in + x.size
        # outputs n with ⌊n·M / L⌋ < total, i.e. n·M < total·L
        end = -(-total * self.up // self.down)
        count = max(end - self._out, 0)
        size = buf.itemsize
        if self.up > MAX_BRANCH_LOOP:
            shape = (buf.size - self._width + 1, self._width)  # window i ends at input i
            windows = np.ndarray(shape, buf.dtype, buffer=buf, strides=(size, size))
            steps = np.arange(self._out, end) * self.down
            starts = steps // self.up - self._in
            out = np.einsum("ij,ij->i", windows[starts], self._branches[steps % self.up])
        elif count == 0:
            out = np.zeros(0, dtype=np.float32)
        else:
            # row j: the inputs of outputs out + jL … out + jL + L - 1 (M inputs apart)
            rows = -(-count // self.up)
            start = self._out * self.down // self.up - self._in
            shape = (rows, self._span)
            windows = np.ndarray(
                shape, buf.dtype, buffer=buf, offset=start * size, strides=(self.down * size, size)
            )
            period = self._periods[self._out % self.up]
            out = (np.ascontiguousarray(windows) @ period).ravel()[:count]
        periods = min(end // self.up, total // self.down)
        self._in, self._out = total - periods * self.down, end - periods * self.up
        return np.asarray(out)

    def flush(self) -> bytes:
        """Nothing (the stream's length stays ``len · L / M``, as soxr's; the filter's
        last ~3 ms are dropped); the resampler starts afresh."""
        self.reset()
        return b""

    def reset(self) -> None:
        self._history[:] = 0.0
        self._in = self._out = 0
