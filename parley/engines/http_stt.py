"""Batch STT through an OpenAI-compatible ``POST /v1/audio/transcriptions`` endpoint
(OpenAI, speaches, faster-whisper-server, whisper.cpp's server, ...).

The utterance goes up as a WAV file in a multipart form with ``model``,
``response_format=json`` and optionally ``language``; the answer is ``{"text": ...}``.
Failures become ``ProviderError`` with a stable code:

    stt_unreachable (retryable)   connection refused / DNS / TLS
    stt_timeout (retryable)       connect or read timeout
    stt_connection_lost (retry.)  the connection broke off
    stt_rate_limited (retryable)  408 / 429
    stt_server_error (retryable)  5xx
    stt_auth                      401 / 403
    stt_bad_request               other 4xx (unknown model, wrong URL)
    stt_bad_response              a body without a "text" string
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from parley.audio.wav import encode_wav
from parley.engines import http_common
from parley.engines.base import ProviderError, STTCapabilities
from parley.engines.http_common import DETAIL_CHARS, EndpointClient, endpoint_url
from parley.engines.wrappers_stt import BufferedSTTStream

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000


def status_error(status: int, detail: str, url: str) -> ProviderError:
    """The ``ProviderError`` for an HTTP error status from the transcription endpoint."""
    return http_common.status_error("stt", status, detail, url)


class HttpSTT:
    """A remote transcription endpoint. ``base_url`` ends in ``/v1`` as for the OpenAI
    SDK (``http://127.0.0.1:8000/v1``); a URL ending in ``/audio/transcriptions`` is
    used as it is."""

    capabilities = STTCapabilities(sample_rate=SAMPLE_RATE, streaming=False)

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        language: str | None = None,
        *,
        timeout_s: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = endpoint_url(base_url, "/audio/transcriptions")
        if not model:
            raise ValueError("HttpSTT needs a model name")
        self.model = model
        self.language = language
        self._endpoint = EndpointClient(api_key, timeout_s, client)

    async def aclose(self) -> None:
        """Close the HTTP client if this engine created it."""
        await self._endpoint.aclose()

    def open_stream(self) -> BufferedSTTStream:
        return BufferedSTTStream(self.transcribe, SAMPLE_RATE)

    async def transcribe(self, pcm: bytes) -> str:
        """One utterance of 16 kHz PCM16; "" for empty audio (no request is made)."""
        if len(pcm) % 2:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        if not pcm:
            return ""
        form = {"model": self.model, "response_format": "json"}
        if self.language:
            form["language"] = self.language
        files = {"file": ("utterance.wav", encode_wav(pcm, SAMPLE_RATE), "audio/wav")}
        endpoint = self._endpoint
        try:
            response = await endpoint.http.post(
                self.url, data=form, files=files, headers=endpoint.headers, timeout=endpoint.timeout
            )
        except httpx.TransportError as exc:
            raise http_common.transport_error("stt", self.url, exc) from exc
        if response.status_code >= 400:
            raise status_error(response.status_code, response.text[:DETAIL_CHARS], self.url)
        text = self._text_of(response)
        logger.debug("transcribed %.2f s: %r", len(pcm) / 2 / SAMPLE_RATE, text)
        return text

    def _text_of(self, response: httpx.Response) -> str:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            snippet = response.text[:DETAIL_CHARS]
            raise ProviderError(
                f'STT endpoint {self.url} sent no "text": {snippet!r}', code="stt_bad_response"
            )
        return text.strip()
