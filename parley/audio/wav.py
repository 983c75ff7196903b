"""WAV files in and out (stdlib ``wave``) and an incremental WAV stream decoder.

Accepted input: uncompressed PCM, 16-bit, any sample rate, any channel count.
Several channels are downmixed to mono by averaging, so a stereo recording from a
phone or browser just works; 8/24/32-bit and float or compressed WAVs are refused
with ``WavFormatError`` naming what was found. Output is always PCM16 mono.
"""

from __future__ import annotations

import io
import os
import struct
import wave
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from parley.audio.pcm import SAMPLE_WIDTH, pcm_to_array

_FORMAT_PCM = 1
_FORMAT_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # placeholders streaming servers write for "until the end"


class WavFormatError(ValueError):
    """The data is not a WAV file Parley can use; the message says what it is."""


@dataclass(frozen=True, slots=True)
class WavAudio:
    pcm: bytes  # PCM16 mono
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) // SAMPLE_WIDTH / self.sample_rate


def _downmix(pcm: bytes, channels: int) -> bytes:
    if channels == 1:
        return pcm
    frames = pcm_to_array(pcm).reshape(-1, channels).astype(np.int32)
    return bytes(np.round(frames.mean(axis=1)).astype("<i2").tobytes())


def read_wav(source: str | os.PathLike[str] | bytes | BinaryIO) -> WavAudio:
    """Read a PCM16 WAV (file path, bytes or binary file) as mono PCM16."""
    handle: str | BinaryIO
    if isinstance(source, bytes):
        handle = io.BytesIO(source)
    elif isinstance(source, os.PathLike):
        handle = os.fspath(source)
    else:
        handle = source
    try:
        with wave.open(handle, "rb") as reader:
            channels, width = reader.getnchannels(), reader.getsampwidth()
            rate, frames = reader.getframerate(), reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(f"not a readable PCM WAV file: {str(exc) or 'truncated'}") from None
    if width != SAMPLE_WIDTH:
        raise WavFormatError(f"WAV must be 16-bit PCM, got {width * 8}-bit samples")
    if rate <= 0 or channels <= 0:
        raise WavFormatError(f"WAV header is invalid ({channels} channels at {rate} Hz)")
    usable = len(frames) - len(frames) % (channels * SAMPLE_WIDTH)
    return WavAudio(_downmix(frames[:usable], channels), rate)


def encode_wav(pcm: bytes, sample_rate: int) -> bytes:
    """PCM16 mono to the bytes of a WAV file."""
    buffer = io.BytesIO()
    write_wav(buffer, pcm, sample_rate)
    return buffer.getvalue()


def write_wav(target: str | os.PathLike[str] | BinaryIO, pcm: bytes, sample_rate: int) -> None:
    """Write PCM16 mono as a WAV file (path or binary file object)."""
    pcm_to_array(pcm)  # validates the length
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    handle = os.fspath(target) if isinstance(target, os.PathLike) else target
    with wave.open(handle, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(SAMPLE_WIDTH)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm)


class WavStreamDecoder:
    """Turns the bytes of a WAV file, arriving in arbitrary pieces, into PCM16 mono.

    Sans-I/O: ``feed`` returns the audio the new bytes complete; ``sample_rate`` is
    known once the header has been read; ``finish`` checks that audio ever began.
    A data size of 0 or 0xFFFFFFFF (written by streaming servers) means "to the end".
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._riff_seen = False
        self._skip = 0  # bytes of an uninteresting chunk still to skip
        self._data_left: int | None = None  # None until the data chunk starts; -1 = unbounded
        self._frame = SAMPLE_WIDTH
        self.channels = 0
        self.sample_rate: int | None = None

    @property
    def in_data(self) -> bool:
        return self._data_left is not None

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        if self._data_left is None:
            self._parse_header()
            if self._data_left is None:
                return b""
        take = len(self._buffer) if self._data_left < 0 else min(self._data_left, len(self._buffer))
        take -= take % self._frame
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        if self._data_left >= 0:
            self._data_left -= take
            if self._data_left < self._frame:
                self._buffer.clear()  # trailing chunks after the audio are ignored
        return _downmix(data, self.channels)

    def finish(self) -> None:
        """Call at the end of the stream: raises if no audio data ever began."""
        if self._data_left is None:
            raise WavFormatError("the WAV stream ended before its audio data began")

    def _parse_header(self) -> None:
        if not self._riff_seen:
            if len(self._buffer) < 12:
                return
            if self._buffer[:4] != b"RIFF" or self._buffer[8:12] != b"WAVE":
                raise WavFormatError(f"not a WAV stream (starts with {bytes(self._buffer[:12])!r})")
            del self._buffer[:12]
            self._riff_seen = True
        while self._data_left is None:
            if self._skip:
                skipped = min(self._skip, len(self._buffer))
                del self._buffer[:skipped]
                self._skip -= skipped
                if self._skip:
                    return
            if len(self._buffer) < 8:
                return
            chunk_id, size = bytes(self._buffer[:4]), struct.unpack("<I", self._buffer[4:8])[0]
            if chunk_id == b"data":
                self._start_data(size)
            elif chunk_id == b"fmt ":
                if len(self._buffer) < 8 + size:
                    return
                self._read_format(bytes(self._buffer[8 : 8 + size]))
                del self._buffer[:8]
                self._skip = size + size % 2
            else:
                del self._buffer[:8]
                self._skip = size + size % 2

    def _start_data(self, size: int) -> None:
        if self.sample_rate is None:
            raise WavFormatError("WAV stream has audio data before its 'fmt ' header")
        del self._buffer[:8]
        self._data_left = -1 if size in _UNKNOWN_SIZES else size

    def _read_format(self, body: bytes) -> None:
        if len(body) < 16:
            raise WavFormatError("WAV 'fmt ' header is too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == _FORMAT_EXTENSIBLE and len(body) >= 26:
            tag = struct.unpack("<H", body[24:26])[0]
        if tag != _FORMAT_PCM:
            raise WavFormatError(f"WAV must be uncompressed PCM, got format tag {tag:#x}")
        if bits != 16:
            raise WavFormatError(f"WAV must be 16-bit PCM, got {bits}-bit samples")
        if channels <= 0 or rate <= 0:
            raise WavFormatError(f"WAV header is invalid ({channels} channels at {rate} Hz)")
        self.channels, self.sample_rate = channels, rate
        self._frame = channels * SAMPLE_WIDTH
