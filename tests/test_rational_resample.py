"""``RationalResampler`` (24 ⇄ 16 kHz and friends): nothing held back, seamless chunks,
a tone at the right frequency, level and delay, aliases rejected; ``stream_resampler``."""

from __future__ import annotations

import numpy as np
import pytest

from parley.audio.polyphase import RationalResampler
from parley.audio.resample import Resampler, stream_resampler


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 10000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return np.rint(amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def fit(y: np.ndarray, freq: float, rate: int) -> tuple[float, float]:
    """Amplitude and phase (radians) of the ``freq`` sinusoid that best fits ``y``."""
    t = np.arange(len(y)) / rate
    basis = np.stack((np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)), axis=1)
    (s, c), *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.hypot(s, c)), float(np.arctan2(c, s))


def level_db(y: np.ndarray, freq: float, rate: int) -> float:
    return 20 * np.log10(max(fit(y, freq, rate)[0], 1e-9) / 10000)


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(24000, 16000), (16000, 24000), (48000, 16000), (8000, 16000), (22050, 24000)],
)
def test_chunks_come_out_at_once_and_chunking_changes_nothing(in_rate: int, out_rate: int) -> None:
    pcm = tone(440, in_rate) + tone(1800, in_rate)
    whole = RationalResampler(in_rate, out_rate).process(pcm)
    assert len(whole) // 2 == len(pcm) // 2 * out_rate // in_rate
    rs = RationalResampler(in_rate, out_rate)
    pieces, rest, taken = [], pcm, 0
    for size in (960, 2, 4, 958, 14, 320, 2000):  # any sample count, 1 and 2 too
        pieces.append(rs.process(rest[:size]))
        rest, taken = rest[size:], taken + size // 2
        # every output whose last input sample has come is out: under one sample held back
        assert sum(len(p) for p in pieces) // 2 == -(-taken * out_rate // in_rate)
    pieces.append(rs.process(rest))
    # the same sums; only float32 rounding (the matrix product's order) may differ
    assert np.max(np.abs(samples(b"".join(pieces)) - samples(whole))) <= 1
    assert rs.process(b"") == b""


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 16000), (16000, 24000)])
def test_a_tone_passes_at_its_frequency_level_and_the_stated_delay(
    in_rate: int, out_rate: int
) -> None:
    rs = RationalResampler(in_rate, out_rate)
    # linear phase: (taps - 1) / 2 samples at 48 kHz, about 3 ms
    assert rs.taps == 287
    assert rs.delay_s == pytest.approx(143 / 48000)
    # 200 Hz: a period (5 ms) longer than the delay, so the phase gives the delay
    y = samples(rs.process(tone(200, in_rate)))[out_rate // 20 :]  # past the start
    amp, phase = fit(y, 200, out_rate)
    assert 20 * np.log10(amp / 10000) == pytest.approx(0, abs=0.05)
    # the fitted sinusoid starts at out_rate // 20 samples (50 ms)
    lag = (0.05 * 2 * np.pi * 200 - phase) % (2 * np.pi)
    assert lag / (2 * np.pi * 200) == pytest.approx(rs.delay_s, abs=2e-6)
    residual = y - amp * np.sin(2 * np.pi * 200 * np.arange(len(y)) / out_rate + phase)
    assert np.sqrt(np.mean(residual**2)) < 3  # < -70 dB of the tone: no distortion
    for passband in (3000, 6500):  # flat through the speech band
        y = samples(RationalResampler(in_rate, out_rate).process(tone(passband, in_rate)))
        assert level_db(y[2000:], passband, out_rate) == pytest.approx(0, abs=0.1)


@pytest.mark.parametrize("freq", [8500, 9000, 10000, 11500])
def test_a_tone_above_8_khz_is_not_aliased_into_16_khz(freq: int) -> None:
    y = samples(RationalResampler(24000, 16000).process(tone(freq, 24000)))[2000:]
    # 16 kHz cannot hold it: it would fold to 16 kHz - freq. From 8.5 kHz on it is
    # attenuated below half an int16 step: > 86 dB under the tone (amplitude 10000)
    assert not y.any()


def test_the_band_edge_rolls_off_between_7_5_and_8_5_khz() -> None:
    def out_db(freq: int) -> float:
        y = samples(RationalResampler(24000, 16000).process(tone(freq, 24000)))[2000:]
        return level_db(y, freq, 16000) if freq < 8000 else level_db(y, 16000 - freq, 16000)

    assert out_db(7500) == pytest.approx(0, abs=0.1)
    assert -3 < out_db(7800) < -0.2
    assert -40 < out_db(8200) < -10


def test_upsampling_rejects_the_images() -> None:
    y = samples(RationalResampler(16000, 24000).process(tone(5000, 16000)))[3000:]
    assert level_db(y, 5000, 24000) == pytest.approx(0, abs=0.1)
    assert level_db(y, 11000, 24000) < -70  # 16 kHz - 5 kHz, the first image


def test_flush_keeps_the_length_then_it_starts_afresh() -> None:
    pcm = tone(1000, 24000, seconds=0.1)
    rs = RationalResampler(24000, 16000)
    body = rs.process(pcm)
    assert len(body) // 2 == 1600 and rs.flush() == b""  # soxr's length, no tail
    assert rs.process(pcm) == body  # state reset


def test_rejects_bad_rates_and_odd_bytes() -> None:
    with pytest.raises(ValueError):
        RationalResampler(16000, 16000)
    with pytest.raises(ValueError):
        RationalResampler(0, 16000)
    with pytest.raises(ValueError):
        RationalResampler(24000, 16000).process(b"\x00")


def test_stream_resampler_uses_polyphase_for_small_ratios_and_soxr_otherwise() -> None:
    assert isinstance(stream_resampler(24000, 16000), RationalResampler)
    assert isinstance(stream_resampler(16000, 24000), RationalResampler)
    assert isinstance(stream_resampler(48000, 16000), RationalResampler)
    assert isinstance(stream_resampler(22050, 24000), Resampler)
    passthrough = stream_resampler(16000, 16000)
    assert isinstance(passthrough, Resampler) and passthrough.passthrough
