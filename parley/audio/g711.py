"""G.711 μ-law and A-law codecs in numpy, bit-exact with the classic Sun/CCITT
algorithms that the stdlib ``audioop`` used (``lin2ulaw``/``ulaw2lin`` and
``lin2alaw``/``alaw2lin`` with width 2).

μ-law encoding drops the two low bits (14-bit input), adds the bias 33, finds the segment
(exponent) whose upper bound holds the magnitude, keeps four mantissa bits, and stores
the byte inverted. A-law encoding drops three low bits (13-bit input), takes the one's
complement of negative values, finds the segment, keeps four mantissa bits and stores
the byte with the even bits inverted (``0x55``; the sign bit set for non-negative
values). Decoding is a 256-entry table for both.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from parley.audio.pcm import pcm_to_array

_BIAS = 0x84  # 132: the bias in 16-bit units; 33 in the 14-bit domain
_CLIP = 8159  # largest 14-bit magnitude before the bias
# Upper bound (inclusive) of each segment's biased 14-bit magnitude.
_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0xFF  # stored inverted
    mantissa = code & 0x0F
    exponent = (code >> 4) & 0x07
    magnitude = ((mantissa << 3) + _BIAS) << exponent
    negative = (code & 0x80) != 0
    return np.where(negative, _BIAS - magnitude, magnitude - _BIAS).astype(np.int16)


_DECODE_TABLE = _build_decode_table()


def encode_ulaw_array(samples: npt.NDArray[np.int16]) -> bytes:
    """int16 samples to μ-law bytes (one byte per sample)."""
    value = samples.astype(np.int32) >> 2
    negative = value < 0
    magnitude = np.minimum(np.abs(value), _CLIP) + (_BIAS >> 2)
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude)  # 8 = beyond the last segment
    exponent = np.minimum(segment, 7)
    code = (exponent << 4) | ((magnitude >> (exponent + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    inverted = code ^ np.where(negative, 0x7F, 0xFF)
    return bytes(inverted.astype(np.uint8).tobytes())


def encode_ulaw(pcm: bytes | bytearray | memoryview) -> bytes:
    """PCM16 bytes to μ-law bytes (half the length)."""
    return encode_ulaw_array(pcm_to_array(pcm))


def decode_ulaw_array(ulaw: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """μ-law bytes to int16 samples."""
    return _DECODE_TABLE[np.frombuffer(ulaw, dtype=np.uint8)]


def decode_ulaw(ulaw: bytes | bytearray | memoryview) -> bytes:
    """μ-law bytes to PCM16 bytes (twice the length)."""
    return bytes(decode_ulaw_array(ulaw).astype("<i2", copy=False).tobytes())


# --- A-law ------------------------------------------------------------------------------

# Upper bound (inclusive) of each A-law segment's 13-bit magnitude.
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _build_alaw_decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    base = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = np.where(segment > 1, base << np.maximum(segment - 1, 0), base)
    return np.where((code & 0x80) != 0, magnitude, -magnitude).astype(np.int16)


_ALAW_DECODE_TABLE = _build_alaw_decode_table()


def encode_alaw_array(samples: npt.NDArray[np.int16]) -> bytes:
    """int16 samples to A-law bytes (one byte per sample)."""
    value = samples.astype(np.int32) >> 3
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude)  # 8 = beyond the last segment
    shift = np.where(segment < 2, 1, segment)
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    stored = code ^ np.where(negative, 0x55, 0xD5)
    return bytes(stored.astype(np.uint8).tobytes())


def encode_alaw(pcm: bytes | bytearray | memoryview) -> bytes:
    """PCM16 bytes to A-law bytes (half the length)."""
    return encode_alaw_array(pcm_to_array(pcm))


def decode_alaw_array(alaw: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """A-law bytes to int16 samples."""
    return _ALAW_DECODE_TABLE[np.frombuffer(alaw, dtype=np.uint8)]


def decode_alaw(alaw: bytes | bytearray | memoryview) -> bytes:
    """A-law bytes to PCM16 bytes (twice the length)."""
    return bytes(decode_alaw_array(alaw).astype("<i2", copy=False).tobytes())
