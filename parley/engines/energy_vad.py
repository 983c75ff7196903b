"""Energy VAD: the fallback when no Silero model is available.

Each 20 ms frame (320 samples at 16 kHz) counts as speech (probability 1.0) when its
RMS in int16 units exceeds ``threshold_rms``, else silence (0.0). Cheap and
deterministic, but any loud noise is "speech"; turn-taking smooths over single frames.
"""

from __future__ import annotations

import numpy as np

from parley.audio.pcm import FrameSplitter, pcm_to_array
from parley.engines.base import VADCapabilities

SAMPLE_RATE = 16000
FRAME_SAMPLES = 320  # 20 ms
DEFAULT_THRESHOLD_RMS = 100.0


def frame_rms(pcm: bytes) -> float:
    """RMS of a PCM16 frame in int16 units (0 … 32768)."""
    samples = pcm_to_array(pcm).astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


class EnergyStream:
    def __init__(self, threshold_rms: float) -> None:
        self._threshold = threshold_rms
        self._splitter = FrameSplitter(FRAME_SAMPLES * 2)
        self._probability = 0.0

    def process(self, pcm: bytes) -> float:
        """Feed 16 kHz PCM16 of any length; returns the latest frame's decision."""
        for frame in self._splitter.push(pcm):
            self._probability = 1.0 if frame_rms(frame) > self._threshold else 0.0
        return self._probability

    def reset(self) -> None:
        self._splitter.reset()
        self._probability = 0.0


class EnergyVAD:
    capabilities = VADCapabilities(sample_rate=SAMPLE_RATE, window_samples=FRAME_SAMPLES)

    def __init__(self, threshold_rms: float = DEFAULT_THRESHOLD_RMS) -> None:
        if threshold_rms < 0:
            raise ValueError(f"threshold_rms must be >= 0, got {threshold_rms}")
        self.threshold_rms = float(threshold_rms)

    def open_stream(self) -> EnergyStream:
        return EnergyStream(self.threshold_rms)
