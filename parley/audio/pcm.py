"""PCM16 (signed 16-bit little-endian mono) helpers: conversion, level, durations,
and two small stream objects that cut arbitrary byte chunks into whole samples
(``SampleAligner``) or fixed-size frames (``FrameSplitter``).
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

SAMPLE_WIDTH = 2  # bytes per PCM16 sample
FULL_SCALE = 32768.0

Int16Array = npt.NDArray[np.int16]

_PCM16 = np.dtype("<i2")
_NATIVE_ORDER = sys.byteorder == "little"  # then "<i2" is np.int16 itself


def pcm_to_array(pcm: bytes | bytearray | memoryview) -> Int16Array:
    """The samples of ``pcm`` as an int16 array (a read-only view for ``bytes``)."""
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
    samples: Int16Array = np.frombuffer(pcm, dtype=_PCM16)
    if _NATIVE_ORDER:
        return samples
    return samples.astype(np.int16)  # pragma: no cover - big-endian hosts only


def array_to_pcm(samples: npt.ArrayLike) -> bytes:
    """Samples in int16 units (any numeric dtype) to PCM16 bytes, rounded and clipped."""
    arr = np.asarray(samples)
    if arr.dtype != np.int16:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.rint(arr)
        arr = np.clip(arr, -32768, 32767).astype(np.int16)
    return arr.astype("<i2", copy=False).tobytes()


def rms(pcm: bytes | bytearray | memoryview) -> float:
    """Root-mean-square level of a PCM16 frame relative to full scale (0.0 … 1.0)."""
    samples = pcm_to_array(pcm)
    if samples.size == 0:
        return 0.0
    as_float = samples.astype(np.float64)
    return float(np.sqrt(np.dot(as_float, as_float) / samples.size) / FULL_SCALE)


def duration_s(pcm: bytes | bytearray | memoryview, sample_rate: int) -> float:
    """How long ``pcm`` plays at ``sample_rate``, in seconds."""
    _check_rate(sample_rate)
    return len(pcm) // SAMPLE_WIDTH / sample_rate


def byte_count(seconds: float, sample_rate: int) -> int:
    """Bytes of PCM16 for ``seconds`` of audio (whole samples, rounded to nearest)."""
    _check_rate(sample_rate)
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    return round(seconds * sample_rate) * SAMPLE_WIDTH


def frame_bytes(sample_rate: int, ms: float = 20.0) -> int:
    """Bytes in one frame of ``ms`` milliseconds, e.g. 640 for 20 ms at 16 kHz."""
    size = byte_count(ms / 1000.0, sample_rate)
    if size == 0:
        raise ValueError(f"a {ms} ms frame at {sample_rate} Hz holds no samples")
    return size


def silence(seconds: float, sample_rate: int) -> bytes:
    """PCM16 zeros lasting ``seconds``."""
    return bytes(byte_count(seconds, sample_rate))


def _check_rate(sample_rate: int) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")


class SampleAligner:
    """Passes byte chunks through as whole samples, holding back a dangling odd byte
    until its partner arrives (e.g. for HTTP bodies split at arbitrary offsets)."""

    def __init__(self) -> None:
        self._dangling = b""

    @property
    def pending(self) -> int:
        """Bytes held back (0 or 1)."""
        return len(self._dangling)

    def feed(self, chunk: bytes) -> bytes:
        if not self._dangling and not len(chunk) % SAMPLE_WIDTH:
            return chunk  # the common case: nothing to hold back
        data = self._dangling + chunk if self._dangling else chunk
        cut = len(data) - len(data) % SAMPLE_WIDTH
        self._dangling = data[cut:]
        return data[:cut]

    def reset(self) -> None:
        """Forget a dangling byte (a stream ended mid-sample)."""
        self._dangling = b""


class FrameSplitter:
    """Cuts PCM16 byte chunks of any length (odd lengths too) into frames of exactly
    ``frame_size`` bytes; what does not fill a frame waits for the next ``push``."""

    def __init__(self, frame_size: int) -> None:
        if frame_size <= 0 or frame_size % SAMPLE_WIDTH:
            raise ValueError(f"frame size must be a positive even byte count, got {frame_size}")
        self.frame_size = frame_size
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes waiting for the next frame (always < ``frame_size``)."""
        return len(self._buffer)

    def push(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``chunk``; return every frame it completes, oldest first.
        Frames are cut from ``chunk`` itself (one copy each, none for a ``bytes``
        chunk that is exactly one frame); only a partial frame is buffered."""
        size = self.frame_size
        if not self._buffer and len(chunk) == size and isinstance(chunk, bytes):
            return [chunk]  # the common case: exactly one frame, nothing waiting
        frames: list[bytes] = []
        view = memoryview(chunk).cast("B")
        start = 0
        if self._buffer:  # complete the waiting partial frame first
            start = min(size - len(self._buffer), len(view))
            self._buffer += view[:start]
            if len(self._buffer) < size:
                return frames
            frames.append(bytes(self._buffer))
            self._buffer.clear()
        end = start + (len(view) - start) // size * size
        if isinstance(chunk, bytes):
            frames.extend(chunk[i : i + size] for i in range(start, end, size))
        else:
            frames.extend(view[i : i + size].tobytes() for i in range(start, end, size))
        self._buffer += view[end:]
        return frames

    def flush(self, *, pad: bool = True) -> bytes:
        """Empty the buffer: the last partial frame, zero-padded to ``frame_size`` when
        ``pad`` (a dangling odd byte is dropped), or b"" when nothing was waiting."""
        rest = bytes(self._buffer[: len(self._buffer) - len(self._buffer) % SAMPLE_WIDTH])
        self._buffer.clear()
        if not rest or not pad:
            return rest
        return rest + bytes(self.frame_size - len(rest))

    def reset(self) -> None:
        self._buffer.clear()
