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
from parley.engines.base import ProviderError, STTCapabilities
from parley.engines.wrappers_stt import BufferedSTTStream

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_DETAIL_CHARS = 300


def status_error(status: int, detail: str, url: str) -> ProviderError:
    """The ``ProviderError`` for an HTTP error status from the transcription endpoint."""
    where = f"STT endpoint {url} answered {status}: {detail or '(no body)'}"
    if status in (401, 403):
        return ProviderError(where, code="stt_auth")
    if status in (408, 429):
        return ProviderError(where, code="stt_rate_limited", retryable=True)
    if status >= 500:
        return ProviderError(where, code="stt_server_error", retryable=True)
    return ProviderError(where, code="stt_bad_request")


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
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ValueError("HttpSTT needs a model name")
        base = base_url.rstrip("/")
        suffix = "/audio/transcriptions"
        self.url = base if base.endswith(suffix) else base + suffix
        self.model = model
        self.language = language
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()

    async def aclose(self) -> None:
        """Close the HTTP client if this engine created it."""
        if self._owns_client:
            await self._client.aclose()

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
        try:
            response = await self._client.post(
                self.url, data=form, files=files, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise ProviderError(
                f"STT endpoint {self.url} timed out: {exc!r}", code="stt_timeout", retryable=True
            ) from exc
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
            raise ProviderError(
                f"STT endpoint {self.url} is unreachable: {exc}",
                code="stt_unreachable",
                retryable=True,
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                f"STT endpoint {self.url} broke off: {exc!r}",
                code="stt_connection_lost",
                retryable=True,
            ) from exc
        if response.status_code >= 400:
            raise status_error(response.status_code, response.text[:_DETAIL_CHARS], self.url)
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
            snippet = response.text[:_DETAIL_CHARS]
            raise ProviderError(
                f'STT endpoint {self.url} sent no "text": {snippet!r}', code="stt_bad_response"
            )
        return text.strip()
