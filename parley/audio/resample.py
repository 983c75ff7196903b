"""Sample-rate conversion of PCM16 with soxr.

``Resampler`` is a stream: one per audio direction, it keeps the filter state across
chunks so chunk boundaries leave no clicks, and it passes audio through untouched when
the rates are equal. ``resample`` converts a whole buffer at once (high quality).

Buffering (measured with 20 ms chunks, soxr 1.1): quality ``"LQ"`` holds back at most
~22 ms for 16k↔24k/48k and 22050→16k, but ~61 ms for 8k↔16k, where soxr emits output
in bursts of ~59 ms. ``"QQ"`` holds back < 1 ms but does not low-pass (avoid it when
downsampling). ``flush`` returns the held-back tail.

``stream_resampler`` picks, for a live stream, the polyphase ``RationalResampler``
(holds back under one sample, ~3 ms group delay) where the ratio is small (24 ⇄ 16 kHz,
2x, 3x) and soxr otherwise.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import soxr

from parley.audio.pcm import SAMPLE_WIDTH, pcm_to_array
from parley.audio.polyphase import RationalResampler

MAX_POLYPHASE_RATIO = 6  # L·M of the reduced ratio: 2/3, 3/2, 1/2, 2, 1/3, 3

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
QUALITIES: tuple[Quality, ...] = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _check(in_rate: int, out_rate: int, quality: str) -> None:
    for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
        if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
            raise ValueError(f"{name} must be a positive integer, got {rate!r}")
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")


class Resampler:
    """Streaming PCM16 resampler for one direction of one connection."""

    def __init__(self, in_rate: int, out_rate: int, quality: Quality = "LQ") -> None:
        _check(in_rate, out_rate, quality)
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)

    @property
    def passthrough(self) -> bool:
        return self._stream is None

    @property
    def buffered_s(self) -> float:
        """Audio taken in but not yet given out, in seconds."""
        if self._stream is None:
            return 0.0
        return float(self._stream.delay()) / self.out_rate

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Resample one chunk (even byte length); may return b"" while soxr buffers.
        At equal rates a ``bytes`` chunk is returned as is (no copy)."""
        if self._stream is None:
            if len(pcm) % SAMPLE_WIDTH:
                raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
            return pcm if isinstance(pcm, bytes) else bytes(pcm)
        samples = pcm_to_array(pcm)
        if samples.size == 0:
            return b""
        return bytes(self._stream.resample_chunk(samples).tobytes())

    def flush(self) -> bytes:
        """The held-back tail; afterwards the resampler starts afresh."""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream.clear()
        return bytes(tail.tobytes())

    def reset(self) -> None:
        """Drop buffered audio and filter state (e.g. after an interruption)."""
        if self._stream is not None:
            self._stream.clear()


def resample(
    pcm: bytes | bytearray | memoryview, in_rate: int, out_rate: int, quality: Quality = "HQ"
) -> bytes:
    """Resample a whole PCM16 buffer in one go."""
    _check(in_rate, out_rate, quality)
    samples = pcm_to_array(pcm)
    if in_rate == out_rate:
        return bytes(pcm)
    if samples.size == 0:
        return b""
    return bytes(soxr.resample(samples, in_rate, out_rate, quality=quality).tobytes())


def stream_resampler(in_rate: int, out_rate: int) -> Resampler | RationalResampler:
    """A low-delay streaming resampler for ``in_rate`` → ``out_rate`` (module docstring)."""
    _check(in_rate, out_rate, "LQ")
    common = math.gcd(in_rate, out_rate)
    if in_rate != out_rate and in_rate * out_rate // common**2 <= MAX_POLYPHASE_RATIO:
        return RationalResampler(in_rate, out_rate)
    return Resampler(in_rate, out_rate)
