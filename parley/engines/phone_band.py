"""A channel transform that fits pocketsphinx's wideband acoustic model to phone audio.

pocketsphinx's en-us model was trained on 16 kHz speech (mel filters up to 6.8 kHz). A
phone line carries nothing above ~3.6 kHz, so every cepstral vector of a caller's
speech lands somewhere the model's Gaussians are not. This module measures where: the
same sentences are spoken by espeak-ng twice — as wideband 16 kHz audio and through a
simulated μ-law 8 kHz line — and a least-squares affine map from wideband to narrowband
cepstra (13 × 13 plus an offset, on cepstral-mean-normalised frames) is fitted to the
frame pairs. pocketsphinx applies it to every Gaussian mean as an MLLR transform
(``-mllr``), the same matrix on the static, delta and delta-delta streams (deltas are
linear in the statics, the offset drops out of them).

It is a channel transform, not a speaker adaptation: both sides of every pair are the
same voice saying the same thing. Estimating it takes ~2–3 s (synthesis, front end and
a 14-column least squares) once per process.

The front end here reproduces pocketsphinx's closely enough for this purpose (pre-
emphasis 0.97, 25.6 ms Hamming window every 10 ms, 512-point FFT, 25 unit-area mel
filters 130–6800 Hz, natural log, orthonormal DCT-II, lifter 22; its per-utterance means
agree with pocketsphinx's own cepstral mean to within a few units on c1 and < 1 on the
others). Noise removal is not reproduced.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from parley.audio.g711 import decode_ulaw, encode_ulaw
from parley.audio.resample import resample
from parley.audio.upsample import Upsampler2x

log = logging.getLogger(__name__)

Floats = npt.NDArray[np.float64]

SAMPLE_RATE = 16000
FFT_SIZE = 512
WINDOW = 410  # 25.625 ms
SHIFT = 160  # 10 ms
FILTERS = 25
LOWER_HZ, UPPER_HZ = 130.0, 6800.0
CEPSTRA = 13
LIFTER = 22
STREAMS = 3  # 1s_c_d_dd split 0-12/13-25/26-38
MAX_LAG = 400  # samples searched when aligning the two versions of an utterance

CALIBRATION_VOICES: tuple[tuple[str, int], ...] = (
    ("en-us+m3", 165), ("en-us+f2", 180), ("en-us", 150), ("en-us+f4", 170),
)  # fmt: skip
CALIBRATION_SENTENCES: tuple[str, ...] = (
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "please call stella and ask her to bring these things with her from the store",
    "we also need a small plastic snake and a big toy frog for the kids",
    "the birch canoe slid on the smooth planks",
    "glue the sheet to the dark blue background",
    "it is easy to tell the depth of a well",
    "the box was thrown beside the parked truck",
    "four hours of steady work faced us",
    "a large size in stockings is hard to sell",
    "the boy was there when the sun rose",
    "the source of the huge river is the clear spring",
    "kick the ball straight and follow through",
    "help the woman get back to her feet",
    "smoky fires lack flame and heat",
    "the soft cushion broke the man's fall",
    "the girl at the booth sold fifty bonds",
    "my number is two oh seven four nine three eight one six five",
    "yes no maybe thank you goodbye hello",
    "what time does the train leave on thursday morning",
    "how much would it cost to change the date",
    "could you spell your name for me please",
    "judge the size of the pool by its width and length",
    "a zebra and a giraffe walked over the hill at dawn",
)
"""General English (no agent's domain), chosen for phonetic variety."""


# --- the front end --------------------------------------------------------------------------


def _mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


def _filterbank() -> Floats:
    mels = np.linspace(_mel(LOWER_HZ), _mel(UPPER_HZ), FILTERS + 2)
    edges = 700.0 * (10 ** (mels / 2595.0) - 1)
    freqs = np.arange(FFT_SIZE // 2 + 1) * SAMPLE_RATE / FFT_SIZE
    bank = np.zeros((FILTERS, freqs.size))
    for i in range(FILTERS):
        left, centre, right = edges[i : i + 3]
        rising = (freqs - left) / (centre - left)
        falling = (right - freqs) / (right - centre)
        bank[i] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (right - left)
    return bank


def _dct() -> Floats:
    n = np.arange(CEPSTRA)[:, None]
    k = np.arange(FILTERS)[None, :]
    basis = np.cos(np.pi * n * (k + 0.5) / FILTERS) * np.sqrt(2.0 / FILTERS)
    basis[0] *= np.sqrt(0.5)
    lifter = 1 + LIFTER / 2 * np.sin(np.pi * np.arange(CEPSTRA) / LIFTER)
    return np.asarray(basis * lifter[:, None], dtype=np.float64)


_BANK = _filterbank()
_DCT = _dct()
_HAMMING = np.hamming(WINDOW)


def cepstra(pcm: bytes) -> Floats:
    """Mel cepstra (frames × 13) of 16 kHz PCM16, as pocketsphinx computes them."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if x.size < WINDOW:
        return np.zeros((0, CEPSTRA))
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    frames = 1 + (x.size - WINDOW) // SHIFT
    index = np.arange(WINDOW)[None, :] + SHIFT * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(x[index] * _HAMMING, FFT_SIZE)) ** 2
    return np.asarray(np.log(np.maximum(power @ _BANK.T, 1e-5)) @ _DCT.T, dtype=np.float64)


# --- the channel ----------------------------------------------------------------------------


def phone_line(pcm16k: bytes) -> bytes:
    """16 kHz speech after a μ-law 8 kHz line and the call's 2× upsampler."""
    narrow = decode_ulaw(encode_ulaw(resample(pcm16k, SAMPLE_RATE, 8000)))
    return Upsampler2x(8000).process(narrow)


def _lag(wide: bytes, narrow: bytes) -> int:
    """Samples by which ``narrow`` trails ``wide`` (filter delays), 0..MAX_LAG."""
    a = np.frombuffer(wide, dtype="<i2").astype(np.float64)
    b = np.frombuffer(narrow, dtype="<i2").astype(np.float64)
    n = min(a.size, b.size)
    if n <= MAX_LAG:
        return 0
    size = 1 << (2 * n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(b[:n], size) * np.conj(np.fft.rfft(a[:n], size)), size)
    return int(np.argmax(corr[: MAX_LAG + 1]))


def fit_transform(pairs: Iterable[tuple[bytes, bytes]]) -> tuple[Floats, Floats]:
    """``(A, b)`` with narrowband ≈ A · wideband + b over the cepstral-mean-normalised
    frames of (wideband, narrowband) utterance pairs. The pairs share one line: its
    delay is measured on the first pair."""
    wides: list[Floats] = []
    narrows: list[Floats] = []
    lag: int | None = None
    for wide, narrow in pairs:
        if lag is None:
            lag = _lag(wide, narrow)
        narrow = narrow[2 * lag :]
        w, n = cepstra(wide), cepstra(narrow)
        m = min(len(w), len(n))
        if m < 10:
            continue
        wides.append(w[:m] - w[:m].mean(axis=0))
        narrows.append(n[:m] - n[:m].mean(axis=0))
    if not wides:
        raise ValueError("no utterance pairs long enough to fit a channel transform")
    x = np.vstack(wides)
    design = np.hstack([x, np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(design, np.vstack(narrows), rcond=None)
    return np.asarray(coef[:CEPSTRA].T, dtype=np.float64), np.asarray(
        coef[CEPSTRA], dtype=np.float64
    )


def mllr_text(a: Floats, b: Floats) -> str:
    """The transform in pocketsphinx's MLLR file format (one class, three streams)."""
    lines = ["1", str(STREAMS)]
    for stream in range(STREAMS):
        lines.append(str(CEPSTRA))
        lines += [" ".join(f"{v:.6f}" for v in row) for row in a]
        offset = b if stream == 0 else np.zeros(CEPSTRA)
        lines.append(" ".join(f"{v:.6f}" for v in offset))
        lines.append(" ".join(["1.000000"] * CEPSTRA))  # variances unchanged
    return "\n".join(lines) + "\n"


def calibration_pairs(
    speak: Callable[[str, str, int], bytes],
    floor: Callable[[bytes, float], bytes],
    wide_floor_rms: float,
    narrow_floor_rms: float,
    sentences: Sequence[str] = CALIBRATION_SENTENCES,
) -> list[tuple[bytes, bytes]]:
    """(wideband, narrowband) pairs as the recognisers would receive them, each with
    its recogniser's noise floor added."""
    pad = bytes(2 * SAMPLE_RATE // 4)  # 250 ms of silence on each side
    pairs = []
    for voice, rate in CALIBRATION_VOICES:
        for sentence in sentences:
            pcm = pad + speak(sentence, voice, rate) + pad
            pairs.append((floor(pcm, wide_floor_rms), floor(phone_line(pcm), narrow_floor_rms)))
    return pairs


@functools.lru_cache(maxsize=4)
def phone_band_mllr(wide_floor_rms: float, narrow_floor_rms: float) -> str:
    """The MLLR text of the phone-line transform (estimated once per process, ~2–3 s)."""
    from parley.engines.espeak import SAMPLE_RATE as ESPEAK_RATE
    from parley.engines.espeak import get_runtime
    from parley.engines.pocketsphinx_stt import add_noise_floor

    def speak(text: str, voice: str, rate: int) -> bytes:
        chunks: list[bytes] = []

        def collect(chunk: bytes) -> bool:
            chunks.append(chunk)
            return True

        get_runtime().submit(text, voice, rate, collect).result(30)
        return resample(b"".join(chunks), ESPEAK_RATE, SAMPLE_RATE)

    rng = np.random.default_rng(0)
    pairs = calibration_pairs(
        speak, lambda pcm, rms: add_noise_floor(pcm, rng, rms), wide_floor_rms, narrow_floor_rms
    )
    a, b = fit_transform(pairs)
    log.info("phone-band transform fitted on %d utterance pairs", len(pairs))
    return mllr_text(a, b)
