"""Smart Turn v3 runner: the numpy Whisper front end, and the real model when it is installed
(``PARLEY_SMART_TURN_MODEL`` or a ``pipecat-ai`` package), batched across callers."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np
import pytest

from parley.engines.base import EngineUnavailable
from parley.engines.smart_turn import (
    N_FRAMES,
    N_MELS,
    SAMPLE_RATE,
    LogMelFrontEnd,
    SmartTurnBatcher,
    SmartTurnModel,
    find_model,
    mel_filters,
)
from parley.engines.espeak import EspeakTTS
from parley.audio.resample import resample_pcm16  # noqa: F401  (checked below)


def tone(hz: float, secs: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(SAMPLE_RATE * secs)) / SAMPLE_RATE
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)
