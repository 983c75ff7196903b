"""``Downsampler2x``: a streaming 2:1 decimator (16 → 8 kHz) that holds back almost nothing.

soxr's streaming resampler emits 16 → 8 kHz output in bursts (up to ~60 ms held back,
``parley.audio.resample``), which a live bridge between two phone legs would add to
every word. This is the counterpart of ``Upsampler2x``: the same linear-phase
windowed-sinc low-pass (cutoff at a quarter of the input rate, Kaiser window), applied
to the input and kept every second sample. Every even-length input chunk gives exactly
half its samples at once (an odd sample waits for the next chunk); the group delay is
``(TAPS - 1) / 2`` input samples (5.9 ms at 16 kHz).
Same interface as ``Resampler`` (``process``, ``flush``, ``reset``).
"""

from __future__ import annotations

import numpy as np

from parley.audio.pcm import SAMPLE_WIDTH, pcm_to_array
from parley.audio.upsample import KAISER_BETA, TAPS, _design

_FILTER = _design(TAPS, KAISER_BETA) / 2  # unity gain (the upsampler's has gain 2)
_HISTORY = TAPS - 1


class Downsampler2x:
    """Streaming 2:1 decimation of PCM16 mono (see the module docstring)."""

    def __init__(self, in_rate: int = 16000) -> None:
        if in_rate % 2:
            raise ValueError(f"in_rate must be even, got {in_rate}")
        self.in_rate = in_rate
        self.out_rate = in_rate // 2
        self._history = np.zeros(_HISTORY, dtype=np.float64)
        self._odd = np.zeros(0, dtype=np.float64)  # one sample waiting for its pair

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Half the samples of ``pcm`` (plus one left over before), at once."""
        if len(pcm) % SAMPLE_WIDTH:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        x = np.concatenate((self._odd, pcm_to_array(pcm).astype(np.float64)))
        usable = x.size - x.size % 2
        self._odd = x[usable:]
        if usable == 0:
            return b""
        buf = np.concatenate((self._history, x[:usable]))
        self._history = buf[-_HISTORY:]
        out = np.convolve(buf, _FILTER, mode="valid")[0::2]
        return bytes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())

    def flush(self) -> bytes:
        """Nothing is held back beyond the filter's delay (and at most one sample)."""
        return b""

    def reset(self) -> None:
        self._history[:] = 0.0
        self._odd = np.zeros(0, dtype=np.float64)
