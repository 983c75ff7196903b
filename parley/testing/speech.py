"""Real synthesized speech for tests and benchmarks, made with the embedded espeak-ng
engine (the same runtime ``EspeakTTS`` uses) and resampled with soxr.

Results are cached by arguments: the same sentence is synthesized once per process.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from parley.audio.pcm import silence
from parley.audio.resample import resample
from parley.audio.wav import write_wav
from parley.engines.espeak import SAMPLE_RATE as ESPEAK_RATE
from parley.engines.espeak import get_runtime

SYNTH_TIMEOUT_S = 30.0


@functools.lru_cache(maxsize=512)
def speak_pcm(text: str, voice: str = "en-us", rate: int = 175, sample_rate: int = 16000) -> bytes:
    """``text`` spoken by espeak-ng as PCM16 mono at ``sample_rate`` (b"" for blank text)."""
    if not text.strip():
        return b""
    chunks: list[bytes] = []

    def collect(chunk: bytes) -> bool:
        chunks.append(chunk)
        return True

    get_runtime().submit(text, voice, rate, collect).result(timeout=SYNTH_TIMEOUT_S)
    return resample(b"".join(chunks), ESPEAK_RATE, sample_rate)


def speak_pcm16k(text: str, voice: str = "en-us", rate: int = 175) -> bytes:
    """``text`` spoken by espeak-ng as 16 kHz PCM16 mono (what STT and VAD expect)."""
    return speak_pcm(text, voice, rate, 16000)


def pad_silence(
    pcm: bytes, before_s: float = 0.0, after_s: float = 0.0, sample_rate: int = 16000
) -> bytes:
    """``pcm`` with digital silence added before and after."""
    return silence(before_s, sample_rate) + pcm + silence(after_s, sample_rate)


def write_speech_wav(
    directory: Path,
    text: str,
    *,
    voice: str = "en-us",
    rate: int = 175,
    sample_rate: int = 16000,
    before_s: float = 0.0,
    after_s: float = 0.0,
    name: str | None = None,
) -> Path:
    """Write ``text`` as speech to a WAV file in ``directory`` and return its path."""
    pcm = pad_silence(speak_pcm(text, voice, rate, sample_rate), before_s, after_s, sample_rate)
    stem = name or (re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "speech")
    path = directory / f"{stem}.wav"
    write_wav(path, pcm, sample_rate)
    return path
