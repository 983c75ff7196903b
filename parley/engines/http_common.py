"""Plumbing shared by the OpenAI-compatible HTTP speech adapters (``http_stt``,
``http_tts``): the endpoint URL, an owned-or-borrowed ``httpx`` client, and the
conversion of HTTP statuses and transport failures to ``ProviderError``.

``kind`` ("stt" or "tts") prefixes every code and names the endpoint in messages:

    {kind}_unreachable (retryable)      connection refused / DNS / TLS
    {kind}_timeout (retryable)          connect or read timeout
    {kind}_connection_lost (retryable)  the connection broke off
    {kind}_rate_limited (retryable)     408 / 429
    {kind}_server_error (retryable)     5xx
    {kind}_auth                         401 / 403
    {kind}_bad_request                  other 4xx
"""

from __future__ import annotations

from typing import Literal

import httpx

from parley.engines.base import ProviderError

Kind = Literal["stt", "tts"]

DETAIL_CHARS = 300
"""How much of an error body goes into a ``ProviderError`` message."""


def endpoint_url(base_url: str, path: str) -> str:
    """``base_url`` (ending in ``/v1`` as for the OpenAI SDK) joined with ``path``
    (``/audio/speech``); a URL already ending in ``path`` is used as it is."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    base = base_url.rstrip("/")
    return base if base.endswith(path) else base + path


def status_error(kind: Kind, status: int, detail: str, url: str) -> ProviderError:
    """The ``ProviderError`` for an HTTP error status from a ``kind`` endpoint."""
    where = f"{kind.upper()} endpoint {url} answered {status}: {detail or '(no body)'}"
    if status in (401, 403):
        return ProviderError(where, code=f"{kind}_auth")
    if status in (408, 429):
        return ProviderError(where, code=f"{kind}_rate_limited", retryable=True)
    if status >= 500:
        return ProviderError(where, code=f"{kind}_server_error", retryable=True)
    return ProviderError(where, code=f"{kind}_bad_request")


def transport_error(kind: Kind, url: str, exc: httpx.TransportError) -> ProviderError:
    """The retryable ``ProviderError`` for a request to ``url`` that never got an answer
    (or lost it part-way); raise it ``from exc``."""
    where = f"{kind.upper()} endpoint {url}"
    if isinstance(exc, httpx.TimeoutException):
        return ProviderError(f"{where} timed out: {exc!r}", code=f"{kind}_timeout", retryable=True)
    if isinstance(exc, (httpx.ConnectError, httpx.UnsupportedProtocol)):
        return ProviderError(
            f"{where} is unreachable: {exc}", code=f"{kind}_unreachable", retryable=True
        )
    return ProviderError(
        f"{where} broke off: {exc!r}", code=f"{kind}_connection_lost", retryable=True
    )


class EndpointClient:
    """The request settings of one endpoint (bearer header, timeouts) and its
    ``httpx`` client, which ``aclose`` closes only when this object created it."""

    def __init__(
        self, api_key: str | None, timeout_s: float, client: httpx.AsyncClient | None
    ) -> None:
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self.http = client or httpx.AsyncClient()
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self.http.aclose()
