"""``Upsampler2x``: a streaming 2x upsampler (8 → 16 kHz) that holds back almost nothing.

soxr's streaming resampler emits 8 → 16 kHz output in bursts of ~59 ms (see
``parley.audio.resample``), so caller audio on the phone reached the VAD up to ~60 ms
late; its ``"QQ"`` quality does not burst but leaves spectral images at about -25 dB
above 4 kHz, which the recogniser's filterbank (up to 6.8 kHz) would hear.

This is a polyphase windowed-sinc interpolator: zero-stuffing plus a linear-phase
low-pass FIR (``TAPS`` taps, cutoff 4 kHz at the output rate, Kaiser window) split into
its even and odd phases. Every input chunk gives exactly twice its samples at once;
the group delay is ``(TAPS - 1) / 2`` output samples (< 2 ms at 16 kHz). The last
``(TAPS + 1) / 2 - 1`` input samples are kept across chunks, so chunk boundaries are
seamless.
Same interface as ``Resampler`` (``process``, ``flush``, ``reset``).
"""

from __future__ import annotations

import numpy as np

from parley.audio.pcm import SAMPLE_WIDTH, pcm_to_array

TAPS = 191  # odd: an integer group delay of 31 output samples
KAISER_BETA = 8.0


def _design(taps: int, beta: float) -> np.ndarray:
    """A low-pass at a quarter of the output rate, gain 2 (for zero-stuffing)."""
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(n / 2) * np.kaiser(taps, beta)
    return np.asarray(2 * h / h.sum(), dtype=np.float64)


_FILTER = np.append(_design(TAPS, KAISER_BETA), 0.0)  # padded: two phases of equal length
_EVEN, _ODD = _FILTER[0::2].copy(), _FILTER[1::2].copy()
_HISTORY = len(_EVEN) - 1


class Upsampler2x:
    """Streaming 2x interpolation of PCM16 mono (see the module docstring)."""

    def __init__(self, in_rate: int = 8000) -> None:
        self.in_rate = in_rate
        self.out_rate = 2 * in_rate
        self._history = np.zeros(_HISTORY, dtype=np.float64)

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Twice the samples of ``pcm`` (even byte length), at once."""
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        x = pcm_to_array(pcm).astype(np.float64)
        if x.size == 0:
            return b""
        buf = np.concatenate((self._history, x))
        self._history = buf[-_HISTORY:]
        out = np.empty(2 * x.size, dtype=np.float64)
        out[0::2] = np.convolve(buf, _EVEN, mode="valid")
        out[1::2] = np.convolve(buf, _ODD, mode="valid")
        return bytes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())

    def flush(self) -> bytes:
        """Nothing is held back beyond the filter's delay: no tail to give out."""
        return b""

    def reset(self) -> None:
        self._history[:] = 0.0
