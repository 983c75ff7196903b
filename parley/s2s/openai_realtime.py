"""OpenAI Realtime adapter: the GA event wire over a reconnecting WebSocket.

The caller's 16 kHz audio is resampled to the wire's 24 kHz. The 60-minute session cap
(``session_expired``) and dropped sockets open a new session seeded with the history (OpenAI
has no resumption handles); see :mod:`parley.s2s.upstream`. ``truncate`` sends
``conversation.item.truncate`` with the heard ``audio_end_ms``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parley.audio.resample import Resampler
from parley.s2s import openai_wire as wire
from parley.s2s.base import INPUT_RATE, Capabilities, HistoryTurn, S2SConfig, S2SConfigError
from parley.s2s.upstream import DEFAULT_BACKOFF, Decoder, Sleep, UpstreamSession

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIDialect:
    capabilities = Capabilities(truncate=True, resumable=False, speech_events=True)

    def __init__(self, api_key: str, base_url: str) -> None:
        self._api_key = api_key
        self._base_url = base_url
        wire.ws_url(base_url, None)  # validates the scheme now
        self._resampler = Resampler(INPUT_RATE, wire.WIRE_RATE)

    def url(self, config: S2SConfig) -> str:
        return wire.ws_url(self._base_url, config.model)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def new_decoder(self) -> Decoder:
        return wire.OpenAIDecoder()

    def is_ready(self, event: object) -> bool:
        return isinstance(event, wire.SessionReady)

    def setup(self, config: S2SConfig, handle: str | None) -> list[str]:
        return [wire.encode_session_update(config)]

    def seed(self, history: Sequence[HistoryTurn]) -> list[str]:
        return wire.encode_history(list(history))

    def audio(self, pcm16k: bytes) -> list[str]:
        pcm24k = self._resampler.process(pcm16k)
        return [wire.encode_audio(pcm24k)] if pcm24k else []

    def text(self, text: str) -> list[str]:
        return [wire.encode_message("user", text), wire.encode_response_create()]

    def tool_result(self, call_id: str, name: str, result: Mapping[str, Any]) -> list[str]:
        return [wire.encode_tool_result(call_id, result), wire.encode_response_create()]

    def truncate(self, item_id: str, audio_end_ms: int) -> list[str]:
        return [wire.encode_truncate(item_id, audio_end_ms)]


class OpenAIRealtime(UpstreamSession):
    """A :class:`~parley.s2s.base.SpeechToSpeech` talking to OpenAI Realtime."""

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        *,
        sleep: Sleep | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
    ) -> None:
        if not api_key:
            raise S2SConfigError("openai_realtime needs an API key: set PARLEY_OPENAI_API_KEY")
        dialect = OpenAIDialect(api_key, base_url or DEFAULT_BASE_URL)
        super().__init__(dialect, sleep=sleep, backoff=backoff)
