"""Piper neural TTS (optional extra ``piper``): a local ``.onnx`` voice with its
``.onnx.json`` config, synthesized one sentence-chunk at a time on this engine's own
worker thread. Nothing is downloaded: the user supplies the voice files.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from parley.engines.base import EngineError, EngineUnavailable, TTSCapabilities
from parley.engines.thread_stream import ChunkSink, stream_from_thread

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'parley[piper]'"


def _read_sample_rate(config_path: Path) -> int:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        rate = config["audio"]["sample_rate"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EngineUnavailable(
            f"{config_path} is not a piper voice config (needs audio.sample_rate): {exc}",
            code="bad_model",
        ) from None
    if not isinstance(rate, int) or rate <= 0:
        raise EngineUnavailable(f"{config_path}: audio.sample_rate must be a positive integer")
    return rate


class PiperTTS:
    """TTS with a local piper voice; PCM16 at the voice's own sample rate."""

    def __init__(self, model_path: str | Path, config_path: str | Path | None = None) -> None:
        self.model_path = Path(model_path)
        self.config_path = Path(config_path) if config_path else Path(f"{self.model_path}.json")
        if not self.model_path.is_file():
            raise EngineUnavailable(
                f"piper voice model not found: {self.model_path} (download a voice .onnx "
                "and its .onnx.json and point the setting at the .onnx file)",
                code="model_missing",
            )
        if not self.config_path.is_file():
            raise EngineUnavailable(
                f"piper voice config not found: {self.config_path} (it must sit next to the "
                "model as <model>.onnx.json)",
                code="model_missing",
            )
        sample_rate = _read_sample_rate(self.config_path)
        if importlib.util.find_spec("piper") is None:
            raise EngineUnavailable(
                f"piper TTS is not installed: {INSTALL_HINT}", code="missing_extra"
            )
        self.capabilities = TTSCapabilities(sample_rate=sample_rate, streaming=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        self._voice: Any = None  # loaded on the worker thread at first use

    def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        # Not joined on close: a sentence may take a while and nobody waits for it;
        # the single worker thread keeps later syntheses in order anyway.
        return stream_from_thread(
            self._executor, lambda sink: self._produce(text, sink), wait_on_close=False
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _produce(self, text: str, sink: ChunkSink) -> None:
        if not text.strip():
            return
        voice = self._load()
        for pcm in self._chunks(voice, text):
            if pcm and not sink(pcm):
                return

    def _chunks(self, voice: Any, text: str) -> Iterator[bytes]:
        chunks = iter(voice.synthesize(text))
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                raise EngineError(f"piper synthesis failed: {exc}", code="tts_failed") from exc
            yield bytes(chunk.audio_int16_bytes)

    def _load(self) -> Any:
        if self._voice is None:
            try:
                from piper import PiperVoice
            except ImportError as exc:
                raise EngineUnavailable(
                    f"piper TTS could not be imported ({exc}): {INSTALL_HINT}",
                    code="missing_extra",
                ) from exc
            try:
                self._voice = PiperVoice.load(str(self.model_path), str(self.config_path))
            except Exception as exc:
                raise EngineUnavailable(
                    f"piper could not load {self.model_path}: {exc}", code="bad_model"
                ) from exc
            logger.info("piper voice loaded: %s", self.model_path)
        return self._voice
