"""Speech fixtures: the real espeak engine and espeak-made test audio.

The helpers themselves live in ``parley.testing.speech`` so that benchmarks and
scripts can import them; these fixtures are thin handles on them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from parley.engines.espeak import EspeakTTS
from parley.testing import speech


@pytest.fixture(scope="session")
def espeak_tts() -> EspeakTTS:
    """The embedded TTS with its default voice (en-us, 175 wpm), 22050 Hz PCM16."""
    return EspeakTTS()


@pytest.fixture(scope="session")
def speak_pcm16k() -> Callable[..., bytes]:
    """``speak_pcm16k(text, voice="en-us", rate=175) -> bytes``: 16 kHz PCM16 speech."""
    return speech.speak_pcm16k


@pytest.fixture
def wav_file(tmp_path: Path) -> Callable[..., Path]:
    """``wav_file(text, **options) -> Path``: a 16 kHz speech WAV in ``tmp_path``
    (options as for ``parley.testing.speech.write_speech_wav``)."""

    def make(text: str, **options: object) -> Path:
        return speech.write_speech_wav(tmp_path, text, **options)  # type: ignore[arg-type]

    return make
