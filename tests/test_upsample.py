"""``Upsampler2x``: exact length at once, seamless chunks, unity gain, images rejected."""

from __future__ import annotations

import numpy as np
import pytest

from parley.audio.upsample import TAPS, Upsampler2x


def tone(freq: float, seconds: float = 0.5, rate: int = 8000, amp: float = 8000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def test_every_chunk_comes_out_at_once_and_chunking_changes_nothing() -> None:
    pcm = tone(440) + tone(1800)
    whole = Upsampler2x().process(pcm)
    assert len(whole) == 2 * len(pcm)
    up = Upsampler2x()
    pieces, rest = [], pcm
    for size in (320, 2, 318, 160, 1000):  # odd sample counts too
        pieces.append(up.process(rest[:size]))
        assert len(pieces[-1]) == 2 * size  # nothing held back
        rest = rest[size:]
    pieces.append(up.process(rest))
    assert b"".join(pieces) == whole
    assert up.flush() == b"" and up.process(b"") == b""


def test_gain_is_one_and_the_delay_is_half_the_filter() -> None:
    x = samples(tone(500, amp=10000))
    y = samples(Upsampler2x().process(tone(500, amp=10000)))
    delay = (TAPS - 1) // 2
    steady = y[delay + 200 : -200 : 2]  # even outputs, after the delay, are the inputs
    assert np.max(np.abs(steady - x[100 : 100 + len(steady)])) < 60  # < -45 dB of 10000


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_images_above_the_phone_band_are_rejected(freq: float) -> None:
    y = samples(Upsampler2x().process(tone(freq, seconds=1.0)))[TAPS:]
    power = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    image = power[freqs > 4600].sum() / power.sum()
    assert 10 * np.log10(image) < -60


def test_reset_forgets_the_history_and_odd_bytes_are_refused() -> None:
    up = Upsampler2x()
    first = up.process(tone(700, 0.05))
    up.process(tone(900, 0.05))
    up.reset()
    assert up.process(tone(700, 0.05)) == first
    with pytest.raises(ValueError, match="even"):
        up.process(b"\x00\x01\x02")
