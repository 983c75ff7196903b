"""An LLM wrapper whose errors are fit for a customer's eyes.

A provider's error text can echo part of the API key ("Incorrect API key provided:
sk-ab***cd"), an internal URL or a stack of details. ``CustomerSafeLLM`` logs that text
once, at WARNING, and re-raises a ``ProviderError`` with the same ``code`` and
``retryable`` but a polite sentence as its message — which is what the brain passes on
to the page, the API and the voice channel. Nothing else changes: text already streamed
stays streamed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from parley.engines.base import LLM, EngineError, LLMChunk, ProviderError

log = logging.getLogger(__name__)

POLITE = {
    "llm_timeout": "Sorry, I'm taking too long to think right now. Please try again in a moment.",
    "llm_stream_cut": "Sorry, my answer was cut off. Please try again.",
}
DEFAULT_POLITE = (
    "Sorry, I can't answer right now because of a problem on our side. "
    "Please try again in a moment."
)


class CustomerSafeLLM:
    """Same interface as the wrapped LLM; see the module docstring."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> AsyncIterator[LLMChunk]:
        try:
            async for chunk in self.inner.stream(messages, tools):
                yield chunk
        except EngineError as exc:
            log.warning("LLM failed (%s): %s", exc.code, exc)
            retryable = getattr(exc, "retryable", False)
            polite = POLITE.get(exc.code, DEFAULT_POLITE)
            raise ProviderError(polite, code=exc.code, retryable=retryable) from None

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
