"""The transfer bridge: a tone from each side arrives on the other (frequency, level)."""

from __future__ import annotations

import numpy as np
import pytest

from parley.audio.g711 import encode_ulaw
from parley.handoff.bridge import Bridge, LegFormat

BROWSER = LegFormat("pcm16", 48000)
CONSOLE = LegFormat("pcm16", 16000)
PHONE = LegFormat("ulaw", 8000)
PHONE_16K = LegFormat("pcm16", 16000)  # a call's audio as ``PhoneCall`` hands it over


def tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.3) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype("<i2").tobytes()


def wire(fmt: LegFormat, pcm: bytes) -> bytes:
    return encode_ulaw(pcm) if fmt.encoding == "ulaw" else pcm


def analyse(fmt: LegFormat, data: bytes) -> tuple[float, float]:
    """(dominant frequency, RMS relative to full scale) of a leg's wire bytes."""
    from parley.audio.g711 import decode_ulaw

    pcm = decode_ulaw(data) if fmt.encoding == "ulaw" else data
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768
    x = x[len(x) // 4 :]  # past the resampler's start-up
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * fmt.rate / len(x)), float(np.sqrt(np.mean(x**2)))


@pytest.mark.parametrize(
    ("caller", "human"),
    [(PHONE, CONSOLE), (BROWSER, PHONE), (BROWSER, CONSOLE), (PHONE, PHONE), (PHONE_16K, PHONE)],
)
def test_a_tone_from_each_side_arrives_on_the_other(caller: LegFormat, human: LegFormat) -> None:
    bridge = Bridge(caller, human)
    up, down = tone(440, caller.rate), tone(1000, human.rate)
    chunk_c, chunk_h = caller.rate // 50 * 2, human.rate // 50 * 2  # 20 ms of PCM16
    to_human = b"".join(
        bridge.from_caller(wire(caller, up[i : i + chunk_c])) for i in range(0, len(up), chunk_c)
    )
    assert not bridge.flowing
    to_caller = b"".join(
        bridge.from_human(wire(human, down[i : i + chunk_h])) for i in range(0, len(down), chunk_h)
    )
    assert bridge.flowing
    f_human, level_human = analyse(human, to_human)
    f_caller, level_caller = analyse(caller, to_caller)
    assert abs(f_human - 440) < 5 and abs(f_caller - 1000) < 5
    expected = 0.3 / np.sqrt(2)
    assert abs(level_human - expected) < 0.03 and abs(level_caller - expected) < 0.03


def test_mu_law_runs_only_at_8k() -> None:
    with pytest.raises(ValueError, match="8000"):
        LegFormat("ulaw", 16000)


def onset(pcm: bytes, threshold: float = 0.05) -> int:
    x = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768)
    return int(np.argmax(x > threshold))


@pytest.mark.parametrize(("low", "high"), [(8000, 16000), (16000, 48000), (8000, 48000)])
def test_integer_ratios_add_little_delay_and_keep_images_out(low: int, high: int) -> None:
    """Rate changes in the bridge, in 20 ms chunks: a few ms of delay each way (soxr
    holds back up to ~60 ms), level and frequency kept, nothing above the lower
    rate's Nyquist let through."""
    from parley.audio.polyphase import Decimator, Interpolator
    from parley.handoff.bridge import rate_converter

    quiet, burst = b"\x00\x00" * (high // 10), tone(1000, high, 0.2)
    pcm = quiet + burst + quiet
    step = high // 50 * 2
    down = rate_converter(high, low)
    assert isinstance(down, Decimator)
    out = b"".join(down.process(pcm[i : i + step]) for i in range(0, len(pcm), step))
    assert len(out) == len(pcm) * low // high
    delay_ms = (onset(out) - low // 10) * 1000 / low
    assert 0 <= delay_ms < 7
    f, level = analyse(LegFormat("pcm16", low), out[low // 5 : low // 5 + low // 5 * 2])
    assert abs(f - 1000) < 10 and abs(level - 0.3 / np.sqrt(2)) < 0.02
    image = tone(low * 0.75, high, 0.5)  # above the lower rate's Nyquist
    gone = np.frombuffer(rate_converter(high, low).process(image), "<i2")[low // 20 :]
    assert np.sqrt(np.mean((gone / 32768.0) ** 2)) < 0.003
    # chunks that do not divide: samples wait for their group, nothing is lost
    odd = rate_converter(high, low)
    parts = [odd.process(pcm[i : i + 322]) for i in range(0, len(pcm), 322)]
    assert b"".join(parts) == rate_converter(high, low).process(pcm)

    up = rate_converter(low, high)
    assert isinstance(up, Interpolator)
    small = low // 50 * 2
    back = b"".join(up.process(out[i : i + small]) for i in range(0, len(out), small))
    assert len(back) == len(out) * high // low
    assert 0 <= (onset(back) - high // 10) * 1000 / high < 14  # both ways
    f, level = analyse(LegFormat("pcm16", high), back[high // 5 : high // 5 + high // 5 * 2])
    assert abs(f - 1000) < 10 and abs(level - 0.3 / np.sqrt(2)) < 0.02
