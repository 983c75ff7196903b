"""TTS through an OpenAI-compatible ``POST /v1/audio/speech`` endpoint (OpenAI,
Kokoro-FastAPI, speaches, ...), streaming the response body as it arrives.

``response_format="pcm"`` is raw PCM16 mono (24 kHz at OpenAI) passed straight
through; ``"wav"`` has its header parsed and stripped, and audio at another rate than
``sample_rate`` is resampled. Failures become ``ProviderError`` with a stable code:

    tts_unreachable (retryable)      connection refused / DNS / TLS
    tts_timeout (retryable)          connect or read timeout
    tts_connection_lost (retryable)  the body broke off mid-stream
    tts_rate_limited (retryable)     429
    tts_server_error (retryable)     5xx
    tts_auth                         401 / 403
    tts_bad_request                  other 4xx (unknown voice or model, wrong URL)
    tts_bad_response                 a body that is not the audio asked for
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Literal

import httpx

from parley.audio.pcm import SampleAligner
from parley.audio.resample import Resampler
from parley.audio.wav import WavFormatError, WavStreamDecoder
from parley.engines import http_common
from parley.engines.base import ProviderError, TTSCapabilities
from parley.engines.http_common import DETAIL_CHARS, EndpointClient, endpoint_url

logger = logging.getLogger(__name__)

ResponseFormat = Literal["pcm", "wav"]


def status_error(status: int, detail: str, url: str) -> ProviderError:
    """The ``ProviderError`` for an HTTP error status from the speech endpoint."""
    return http_common.status_error("tts", status, detail, url)


class _BodyDecoder:
    """Turns response body pieces into PCM16 at the engine's sample rate."""

    def __init__(self, response_format: ResponseFormat, sample_rate: int) -> None:
        self._format = response_format
        self._sample_rate = sample_rate
        self._aligner = SampleAligner()
        self._wav = WavStreamDecoder()
        self._resampler: Resampler | None = None

    def feed(self, piece: bytes) -> bytes:
        if self._format == "pcm":
            return self._aligner.feed(piece)
        pcm = self._wav.feed(piece)
        if self._resampler is None and self._wav.sample_rate is not None:
            self._resampler = Resampler(self._wav.sample_rate, self._sample_rate)
        return self._resampler.process(pcm) if self._resampler and pcm else pcm

    def finish(self) -> bytes:
        if self._format == "pcm":
            return b""
        self._wav.finish()
        return self._resampler.flush() if self._resampler else b""


class HttpTTS:
    """A remote OpenAI-compatible speech endpoint. ``base_url`` ends in ``/v1``, as
    for the OpenAI SDK, e.g. ``http://127.0.0.1:8880/v1`` for Kokoro-FastAPI."""

    def __init__(
        self,
        base_url: str,
        model: str,
        voice: str,
        api_key: str | None = None,
        response_format: ResponseFormat = "pcm",
        sample_rate: int = 24000,
        *,
        timeout_s: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if response_format not in ("pcm", "wav"):
            raise ValueError(f"response_format must be 'pcm' or 'wav', got {response_format!r}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.url = endpoint_url(base_url, "/audio/speech")
        self.model = model
        self.voice = voice
        self.response_format: ResponseFormat = response_format
        self.capabilities = TTSCapabilities(sample_rate=sample_rate, streaming=True)
        self._endpoint = EndpointClient(api_key, timeout_s, client)

    def with_voice(self, voice: str) -> HttpTTS:
        """The same engine (and HTTP client) speaking with another ``voice``."""
        other = copy.copy(self)
        other.voice = voice
        return other

    async def aclose(self) -> None:
        """Close the HTTP client if this engine created it."""
        await self._endpoint.aclose()

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        body = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": self.response_format,
        }
        try:
            async with aclosing(self._stream(body)) as chunks:
                async for pcm in chunks:
                    yield pcm
        except httpx.TransportError as exc:
            raise http_common.transport_error("tts", self.url, exc) from exc
        except WavFormatError as exc:
            raise ProviderError(
                f"TTS endpoint {self.url} sent bad WAV: {exc}", code="tts_bad_response"
            ) from exc

    async def _stream(self, body: dict[str, str]) -> AsyncGenerator[bytes, None]:
        decoder = _BodyDecoder(self.response_format, self.capabilities.sample_rate)
        endpoint = self._endpoint
        request = endpoint.http.stream(
            "POST", self.url, json=body, headers=endpoint.headers, timeout=endpoint.timeout
        )
        async with request as response:
            if response.status_code >= 400:
                detail = (await response.aread()).decode("utf-8", "replace")[:DETAIL_CHARS]
                raise status_error(response.status_code, detail.strip(), self.url)
            content_type = response.headers.get("content-type", "")
            if content_type.startswith(("application/json", "text/")):
                raise ProviderError(
                    f"TTS endpoint {self.url} sent {content_type!r} instead of audio",
                    code="tts_bad_response",
                )
            async for piece in response.aiter_bytes():
                if pcm := decoder.feed(piece):
                    yield pcm
            if tail := decoder.finish():
                yield tail
