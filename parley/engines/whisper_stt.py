"""Batch STT with faster-whisper from a local model directory (the ``whisper`` extra).

Parley never downloads models: ``model_dir`` must be a directory holding a
CTranslate2 Whisper model (``model.bin``, ``config.json``, ``tokenizer.json``,
``vocabulary.*``, as in the Systran/faster-whisper-* repositories). Loading and
transcription block, so construction belongs in a thread at startup and each
utterance is transcribed in a worker thread. No partials (``streaming=False``);
streams buffer the utterance (:class:`~parley.engines.wrappers_stt.BufferedSTTStream`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

import numpy as np

from parley.audio.pcm import FULL_SCALE, pcm_to_array
from parley.engines.base import EngineError, EngineUnavailable, STTCapabilities
from parley.engines.wrappers_stt import BufferedSTTStream

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def check_model_dir(model_dir: str) -> None:
    """Raise ``EngineUnavailable`` unless ``model_dir`` looks like a local model."""
    if not os.path.isdir(model_dir):
        raise EngineUnavailable(
            f"Whisper model directory not found: {model_dir!r} (Parley never downloads"
            " models; point it at a local faster-whisper model directory)"
        )
    if not os.path.isfile(os.path.join(model_dir, "model.bin")):
        raise EngineUnavailable(
            f"{model_dir!r} holds no model.bin; expected a CTranslate2 Whisper model"
            " (e.g. a copy of Systran/faster-whisper-small.en)"
        )


class WhisperSTT:
    capabilities = STTCapabilities(sample_rate=SAMPLE_RATE, streaming=False)

    def __init__(
        self,
        model_dir: str,
        device: str = "cpu",
        compute_type: str = "int8",
        *,
        language: str | None = None,
        beam_size: int = 1,
    ) -> None:
        check_model_dir(model_dir)
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise EngineUnavailable(
                "WhisperSTT needs faster-whisper: pip install 'parley[whisper]'"
            ) from exc
        try:
            self._model: Any = WhisperModel(model_dir, device=device, compute_type=compute_type)
        except Exception as exc:  # ctranslate2 raises plain RuntimeError/ValueError
            raise EngineUnavailable(f"cannot load Whisper model {model_dir!r}: {exc}") from exc
        self.language = language
        self.beam_size = beam_size
        self._lock = threading.Lock()  # one transcription at a time per model
        logger.info("loaded Whisper model %s (%s, %s)", model_dir, device, compute_type)

    def open_stream(self) -> BufferedSTTStream:
        return BufferedSTTStream(self.transcribe, SAMPLE_RATE)

    async def transcribe(self, pcm: bytes) -> str:
        samples = pcm_to_array(pcm)
        if samples.size == 0:
            return ""
        audio = samples.astype(np.float32) / np.float32(FULL_SCALE)
        return await asyncio.to_thread(self._transcribe_blocking, audio)

    def _transcribe_blocking(self, audio: Any) -> str:
        with self._lock:
            try:
                segments, _info = self._model.transcribe(
                    audio, language=self.language, beam_size=self.beam_size
                )
                return " ".join(s.text.strip() for s in segments).strip()
            except Exception as exc:
                raise EngineError(
                    f"Whisper transcription failed: {exc}", code="stt_failed"
                ) from exc
