"""Gemini Live adapter: the BidiGenerateContent wire over a reconnecting WebSocket.

Audio goes up as 16 kHz PCM (Gemini's native input rate). ``goAway`` and dropped sockets
resume with the newest ``sessionResumptionUpdate`` handle; see :mod:`parley.s2s.upstream`.
``contextWindowCompression`` (sliding window) is in the setup unless the config turns it off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parley.s2s import gemini_wire as wire
from parley.s2s.base import Capabilities, HistoryTurn, S2SConfig, S2SConfigError
from parley.s2s.upstream import DEFAULT_BACKOFF, Decoder, Sleep, UpstreamSession

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class GeminiDialect:
    capabilities = Capabilities(truncate=False, resumable=True)

    def __init__(self, api_key: str, base_url: str) -> None:
        self._url = wire.ws_url(base_url, api_key)  # validates the scheme now

    def url(self, config: S2SConfig) -> str:
        return self._url

    def headers(self) -> dict[str, str]:
        return {}

    def new_decoder(self) -> Decoder:
        return wire.GeminiDecoder()

    def is_ready(self, event: object) -> bool:
        return isinstance(event, wire.SetupComplete)

    def setup(self, config: S2SConfig, handle: str | None) -> list[str]:
        return [wire.encode_setup(config, handle)]

    def seed(self, history: Sequence[HistoryTurn]) -> list[str]:
        return [wire.encode_history(list(history))]

    def audio(self, pcm16k: bytes) -> list[str]:
        return [wire.encode_audio(pcm16k)]

    def text(self, text: str) -> list[str]:
        return [wire.encode_text(text)]

    def tool_result(self, call_id: str, name: str, result: Mapping[str, Any]) -> list[str]:
        return [wire.encode_tool_result(call_id, name, result)]

    def truncate(self, item_id: str, audio_end_ms: int) -> list[str]:
        return []


class GeminiLive(UpstreamSession):
    """A :class:`~parley.s2s.base.SpeechToSpeech` talking to Gemini Live."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        *,
        sleep: Sleep | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
    ) -> None:
        if not api_key:
            raise S2SConfigError("gemini_live needs an API key: set PARLEY_GEMINI_API_KEY")
        dialect = GeminiDialect(api_key, base_url or DEFAULT_BASE_URL)
        super().__init__(dialect, sleep=sleep, backoff=backoff)
