"""parley.audio: PCM helpers, frame splitting, resampling, μ-law and WAV."""

from __future__ import annotations

import io
import random
import struct
import warnings
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley.audio import (
    FrameSplitter,
    Resampler,
    SampleAligner,
    WavFormatError,
    WavStreamDecoder,
    array_to_pcm,
    byte_count,
    decode_alaw,
    decode_ulaw,
    duration_s,
    encode_alaw,
    encode_ulaw,
    encode_wav,
    frame_bytes,
    pcm_to_array,
    read_wav,
    resample,
    rms,
    silence,
    write_wav,
)
from parley.audio.g711 import encode_alaw_array


def tone(freq: float, seconds: float, rate: int, amplitude: float = 8000.0) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    return array_to_pcm(amplitude * np.sin(2 * np.pi * freq * t))


def zero_crossings(pcm: bytes) -> int:
    samples = pcm_to_array(pcm).astype(np.int32)
    return int(np.count_nonzero(np.diff(np.signbit(samples))))


# --- pcm --------------------------------------------------------------------------


def test_pcm_array_round_trip_and_odd_length_rejected() -> None:
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    pcm = array_to_pcm(samples)
    assert pcm == samples.astype("<i2").tobytes()
    assert pcm_to_array(pcm).tolist() == samples.tolist()
    with pytest.raises(ValueError, match=r"even number of bytes, got 3"):
        pcm_to_array(b"\x00\x01\x02")
    as_array = pcm_to_array(memoryview(bytearray(pcm)))
    assert as_array.dtype == np.int16 and as_array.tolist() == samples.tolist()


def test_array_to_pcm_rounds_and_clips_floats() -> None:
    assert pcm_to_array(array_to_pcm([1.6, -1.6, 40000.0, -40000.0])).tolist() == [
        2,
        -2,
        32767,
        -32768,
    ]


def test_rms_relative_to_full_scale() -> None:
    assert rms(b"") == 0.0
    assert rms(silence(0.02, 16000)) == 0.0
    assert rms(array_to_pcm([-32768, -32768])) == pytest.approx(1.0)
    sine = tone(440, 1.0, 16000, amplitude=16384)
    assert rms(sine) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


def test_durations_and_frame_sizes() -> None:
    assert frame_bytes(16000) == 640
    assert frame_bytes(8000, 20) == 320
    assert frame_bytes(22050, 50) == 2204  # 1102.5 samples, rounded half to even
    assert byte_count(0.5, 16000) == 16000
    assert duration_s(silence(1.5, 24000), 24000) == pytest.approx(1.5)
    assert len(silence(0.02, 8000)) == 320
    with pytest.raises(ValueError, match=r"holds no samples"):
        frame_bytes(8000, 0.01)
    with pytest.raises(ValueError, match=r"sample rate must be positive"):
        duration_s(b"", 0)
    with pytest.raises(ValueError, match=r"seconds must be >= 0"):
        byte_count(-1, 16000)


def test_sample_aligner_keeps_the_dangling_byte() -> None:
    aligner = SampleAligner()
    assert aligner.feed(b"\x01") == b""
    assert aligner.pending == 1
    assert aligner.feed(b"\x02\x03\x04\x05") == b"\x01\x02\x03\x04"
    assert aligner.pending == 1
    assert aligner.feed(b"\x06") == b"\x05\x06"
    assert aligner.pending == 0
    whole = b"\x01\x02\x03\x04"
    assert aligner.feed(whole) is whole  # nothing held back: no copy


def test_frame_splitter_with_odd_chunk_sizes() -> None:
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(10_001))
    splitter = FrameSplitter(640)
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        size = rng.choice([1, 3, 7, 639, 641, 1281])
        frames += splitter.push(data[pos : pos + size])
        pos += size
        assert splitter.buffered < 640
    assert all(len(f) == 640 for f in frames)
    assert b"".join(frames) == data[: len(frames) * 640]
    assert len(frames) == 10_001 // 640
    tail = splitter.flush()
    rest = data[len(frames) * 640 : -1]  # the last odd byte is dropped
    assert tail == rest + bytes(640 - len(rest))
    assert splitter.buffered == 0
    assert splitter.flush() == b""


def test_frame_splitter_takes_any_buffer_and_copies_no_single_frame() -> None:
    data = bytes(range(256)) * 10  # 2560 bytes
    frame = data[:640]
    splitter = FrameSplitter(640)
    assert splitter.push(frame)[0] is frame  # one whole frame: passed on as is
    for chunk in (bytearray(data), memoryview(data), memoryview(data).cast("h")):
        frames = splitter.push(chunk)
        assert all(type(f) is bytes for f in frames)
        assert b"".join(frames) == data and splitter.buffered == 0
    assert splitter.push(memoryview(data)[:700]) == [data[:640]]
    assert splitter.push(bytearray(data[700:1000])) == []  # completes no frame
    assert splitter.push(memoryview(data)[1000:1920]) == [data[640:1280], data[1280:1920]]
    assert splitter.buffered == 0


def test_frame_splitter_unpadded_flush_reset_and_bad_size() -> None:
    splitter = FrameSplitter(4)
    assert splitter.push(b"\x01\x02\x03\x04\x05\x06\x07") == [b"\x01\x02\x03\x04"]
    assert splitter.flush(pad=False) == b"\x05\x06"
    splitter.push(b"\x01\x02")
    splitter.reset()
    assert splitter.buffered == 0
    for bad in (0, -2, 3):
        with pytest.raises(ValueError, match=r"positive even byte count"):
            FrameSplitter(bad)


# --- resampling ----------------------------------------------------------------------


PAIRS = [(8000, 16000), (16000, 8000), (22050, 16000), (16000, 24000), (24000, 48000)]


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_stream_length_is_exact_after_flush(in_rate: int, out_rate: int) -> None:
    resampler = Resampler(in_rate, out_rate)
    source = tone(300, 1.0, in_rate)
    frame = frame_bytes(in_rate)
    out = b"".join(resampler.process(source[i : i + frame]) for i in range(0, len(source), frame))
    out += resampler.flush()
    assert len(out) // 2 == out_rate  # one second in, one second out
    assert resampler.buffered_s == 0.0


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_chunk_boundaries_do_not_change_the_signal(in_rate: int, out_rate: int) -> None:
    source = tone(440, 0.5, in_rate)
    whole = Resampler(in_rate, out_rate)
    reference = pcm_to_array(whole.process(source) + whole.flush()).astype(np.int32)
    chunked = Resampler(in_rate, out_rate)
    rng = random.Random(3)
    pieces: list[bytes] = []
    pos = 0
    while pos < len(source):
        size = 2 * rng.randrange(1, 500)
        pieces.append(chunked.process(source[pos : pos + size]))
        pos += size
    result = pcm_to_array(b"".join(pieces) + chunked.flush()).astype(np.int32)
    assert len(result) == len(reference)
    assert np.abs(result - reference).max() <= 4  # rounding only; no clicks at boundaries
    # the 440 Hz tone survives: one crossing per half period
    assert zero_crossings(array_to_pcm(result)) == pytest.approx(440, abs=3)


# Worst buffering of LQ with 20 ms chunks (soxr 1.1); see parley.audio.resample.
DELAY_BOUNDS_S = {(8000, 16000): 0.065, (16000, 8000): 0.065, (22050, 16000): 0.025}
DELAY_BOUNDS_S |= {(16000, 24000): 0.025, (24000, 48000): 0.025}


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_lq_buffering_delay_is_bounded(in_rate: int, out_rate: int) -> None:
    resampler = Resampler(in_rate, out_rate, quality="LQ")
    frame = frame_bytes(in_rate)
    source = tone(200, 2.0, in_rate)
    seconds_in = seconds_out = worst = 0.0
    for i in range(0, len(source), frame):
        out = resampler.process(source[i : i + frame])
        seconds_in += frame / 2 / in_rate
        seconds_out += len(out) / 2 / out_rate
        worst = max(worst, seconds_in - seconds_out)
        assert resampler.buffered_s == pytest.approx(seconds_in - seconds_out, abs=1e-3)
    assert 0 < worst <= DELAY_BOUNDS_S[(in_rate, out_rate)]


def test_equal_rates_pass_through() -> None:
    resampler = Resampler(16000, 16000)
    chunk = tone(100, 0.02, 16000)
    assert resampler.passthrough
    assert resampler.process(chunk) is chunk  # no copy
    assert resampler.process(bytearray(chunk)) == chunk
    assert type(resampler.process(memoryview(chunk))) is bytes
    assert resampler.buffered_s == 0.0
    with pytest.raises(ValueError, match=r"even number of bytes, got 3"):
        resampler.process(b"\x00\x01\x02")
    assert resampler.flush() == b""
    assert resample(chunk, 16000, 16000) == chunk


def test_reset_drops_buffered_audio() -> None:
    resampler = Resampler(8000, 16000)
    resampler.process(tone(100, 0.02, 8000))
    assert resampler.buffered_s > 0
    resampler.reset()
    assert resampler.buffered_s == 0.0
    assert resampler.flush() == b""


def test_bad_resampler_arguments() -> None:
    with pytest.raises(ValueError, match=r"in_rate must be a positive integer"):
        Resampler(0, 16000)
    with pytest.raises(ValueError, match=r"out_rate must be a positive integer"):
        Resampler(16000, 16000.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"quality must be one of"):
        Resampler(8000, 16000, quality="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"even number of bytes"):
        Resampler(8000, 16000).process(b"\x00")


def test_one_shot_resample_keeps_pitch_and_length() -> None:
    source = tone(440, 1.0, 22050)
    out = resample(source, 22050, 16000)
    assert len(out) // 2 == 16000
    assert zero_crossings(out) == pytest.approx(zero_crossings(source), abs=2)
    assert resample(b"", 22050, 16000) == b""


# --- μ-law --------------------------------------------------------------------------------


def _audioop() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    return audioop


def test_ulaw_encode_is_bit_exact_with_audioop_for_every_sample() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16).tobytes()
    assert encode_ulaw(every) == _audioop().lin2ulaw(every, 2)


def test_ulaw_decode_is_bit_exact_with_audioop_for_every_code() -> None:
    codes = bytes(range(256))
    assert decode_ulaw(codes) == _audioop().ulaw2lin(codes, 2)


def test_ulaw_round_trip_error_is_small_and_sizes_halve() -> None:
    source = tone(1000, 0.02, 8000, amplitude=20000)
    encoded = encode_ulaw(source)
    assert len(encoded) == len(source) // 2
    decoded = pcm_to_array(decode_ulaw(encoded)).astype(np.int32)
    original = pcm_to_array(source).astype(np.int32)
    assert np.abs(decoded - original).max() <= np.abs(original).max() // 16
    with pytest.raises(ValueError, match=r"even number of bytes"):
        encode_ulaw(b"\x00\x00\x00")


# --- A-law ------------------------------------------------------------------------------


def test_alaw_encode_is_bit_exact_with_audioop_for_every_sample() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16).tobytes()
    assert encode_alaw(every) == _audioop().lin2alaw(every, 2)


def test_alaw_decode_is_bit_exact_with_audioop_for_every_code() -> None:
    codes = bytes(range(256))
    assert decode_alaw(codes) == _audioop().alaw2lin(codes, 2)


def test_alaw_literal_codes_and_round_trip() -> None:
    # silence encodes to 0xD5 (positive zero) / 0x55 (negative zero); the extremes saturate
    extremes = np.array([0, -1, 32767, -32768], dtype=np.int16)
    assert encode_alaw_array(extremes) == bytes([0xD5, 0x55, 0xAA, 0x2A])
    source = tone(1000, 0.02, 8000, amplitude=20000)
    decoded = pcm_to_array(decode_alaw(encode_alaw(source))).astype(np.int32)
    original = pcm_to_array(source).astype(np.int32)
    assert np.abs(decoded - original).max() <= np.abs(original).max() // 16
    with pytest.raises(ValueError, match=r"even number of bytes"):
        encode_alaw(b"\x00")


# --- WAV -----------------------------------------------------------------------------------


def test_wav_round_trip_through_path_bytes_and_file(tmp_path: Path) -> None:
    pcm = tone(300, 0.1, 16000)
    path = tmp_path / "a.wav"
    write_wav(path, pcm, 16000)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        audio = read_wav(source)
        assert (audio.pcm, audio.sample_rate) == (pcm, 16000)
    assert read_wav(encode_wav(pcm, 8000)).duration_s == pytest.approx(0.2)


def raw_wav(channels: int, width: int, rate: int, frames: bytes) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return buffer.getvalue()


def test_stereo_is_downmixed_by_averaging() -> None:
    stereo = array_to_pcm([1000, 3000, -2000, 0, 32767, 32767])
    audio = read_wav(raw_wav(2, 2, 44100, stereo))
    assert pcm_to_array(audio.pcm).tolist() == [2000, -1000, 32767]
    assert audio.sample_rate == 44100


def test_unsupported_wavs_get_clear_errors() -> None:
    with pytest.raises(WavFormatError, match=r"16-bit PCM, got 8-bit"):
        read_wav(raw_wav(1, 1, 8000, b"\x80" * 10))
    with pytest.raises(WavFormatError, match=r"not a readable PCM WAV"):
        read_wav(b"this is not audio at all")
    with pytest.raises(WavFormatError, match=r"not a readable PCM WAV"):
        read_wav(float_wav())
    with pytest.raises(ValueError, match=r"even number of bytes"):
        write_wav(io.BytesIO(), b"\x00", 16000)


def float_wav() -> bytes:
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    data = bytes(16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def streamed_wav(pcm: bytes, rate: int, channels: int = 1, data_size: int | None = None) -> bytes:
    """A WAV as a streaming server sends it: an extra LIST chunk, maybe no real size."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    info = b"INFOtest"
    size = len(pcm) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", len(info)) + info
    body += b"data" + struct.pack("<I", size) + pcm
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body


@pytest.mark.parametrize("placeholder", [0, 0xFFFFFFFF])
def test_wav_stream_decoder_byte_by_byte_with_unknown_size(placeholder: int) -> None:
    pcm = tone(300, 0.05, 24000)
    decoder = WavStreamDecoder()
    out = b"".join(
        decoder.feed(bytes([b])) for b in streamed_wav(pcm, 24000, data_size=placeholder)
    )
    decoder.finish()
    assert out == pcm
    assert decoder.sample_rate == 24000


def test_wav_stream_decoder_honours_data_size_and_downmixes() -> None:
    stereo = array_to_pcm([100, 300, 500, 700])
    data = streamed_wav(stereo, 22050, channels=2) + b"JUNKtrailing metadata"
    decoder = WavStreamDecoder()
    out = decoder.feed(data[:50]) + decoder.feed(data[50:])
    assert pcm_to_array(out).tolist() == [200, 600]


def test_wav_stream_decoder_errors() -> None:
    with pytest.raises(WavFormatError, match=r"not a WAV stream"):
        WavStreamDecoder().feed(b"ID3\x04" + bytes(20))
    with pytest.raises(WavFormatError, match=r"uncompressed PCM, got format tag 0x3"):
        WavStreamDecoder().feed(float_wav())
    no_fmt = b"RIFF" + bytes(4) + b"WAVE" + b"data" + bytes(8)
    with pytest.raises(WavFormatError, match=r"before its 'fmt ' header"):
        WavStreamDecoder().feed(no_fmt)
    decoder = WavStreamDecoder()
    decoder.feed(b"RIFF")
    with pytest.raises(WavFormatError, match=r"ended before its audio data"):
        decoder.finish()
