"""Pure wire codec for OpenAI Realtime (GA events), client side.

``encode_*`` build client events (JSON text); :class:`OpenAIDecoder` turns server events
into the vocabulary of :mod:`parley.s2s.base` plus :class:`SessionReady`. No sockets, no
clock. Audio on this wire is 24 kHz PCM16 both ways (the adapter resamples the caller's
16 kHz). A function call is reported by both ``response.function_call_arguments.done`` and
``response.output_item.done``; the decoder yields it once. An ``error`` with code
``session_expired`` (the 60-minute cap) becomes :class:`GoAway` so the adapter rebuilds
the session from history the same way it handles Gemini's ``goAway``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from parley.s2s.base import (
    AudioOut,
    GoAway,
    HistoryTurn,
    InputTranscript,
    Interrupted,
    OutputTranscript,
    S2SConfig,
    S2SEvent,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TurnComplete,
    UpstreamError,
)
from parley.s2s.urls import websocket_base

DEFAULT_MODEL = "gpt-realtime"
WIRE_RATE = 24_000
RETRYABLE_CODES = frozenset({"rate_limit_exceeded", "server_error", "internal_error"})


class OpenAIWireError(ValueError):
    """A server event that is not valid Realtime JSON."""


@dataclass(frozen=True, slots=True)
class SessionReady:
    """``session.updated``: our configuration is in force."""


def ws_url(base_url: str, model: str | None) -> str:
    """``https://api.openai.com/v1`` → ``wss://api.openai.com/v1/realtime?model=...``."""
    return f"{websocket_base(base_url)}/realtime?model={quote(model or DEFAULT_MODEL, safe='')}"


def _dumps(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def session_update(config: S2SConfig) -> dict[str, Any]:
    pcm = {"type": "audio/pcm", "rate": WIRE_RATE}
    audio_in: dict[str, Any] = {
        "format": pcm,
        "turn_detection": {"type": "server_vad"} if config.server_vad else None,
    }
    if config.input_transcription:
        audio_in["transcription"] = {"model": config.transcription_model}
    audio_out: dict[str, Any] = {"format": pcm}
    if config.voice:
        audio_out["voice"] = config.voice
    session: dict[str, Any] = {
        "type": "realtime",
        "model": config.model or DEFAULT_MODEL,
        "output_modalities": ["audio"],
        "instructions": config.instructions,
        "audio": {"input": audio_in, "output": audio_out},
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": dict(t.parameters),
            }
            for t in config.tools
        ],
        "tool_choice": "auto",
    }
    return {"type": "session.update", "session": session}


def encode_session_update(config: S2SConfig) -> str:
    return _dumps(session_update(config))


def encode_audio(pcm24k: bytes) -> str:
    audio = base64.b64encode(pcm24k).decode("ascii")
    return _dumps({"type": "input_audio_buffer.append", "audio": audio})


def encode_message(role: str, text: str) -> str:
    part = "input_text" if role == "user" else "output_text"
    item = {"type": "message", "role": role, "content": [{"type": part, "text": text}]}
    return _dumps({"type": "conversation.item.create", "item": item})


def encode_history(turns: tuple[HistoryTurn, ...] | list[HistoryTurn]) -> list[str]:
    return [encode_message(t.role, t.text) for t in turns]


def encode_tool_result(call_id: str, result: Mapping[str, Any]) -> str:
    item = {"type": "function_call_output", "call_id": call_id, "output": _dumps(result)}
    return _dumps({"type": "conversation.item.create", "item": item})


def encode_response_create() -> str:
    return _dumps({"type": "response.create"})


def encode_truncate(item_id: str, audio_end_ms: int) -> str:
    return _dumps(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": max(0, int(audio_end_ms)),
        }
    )


OpenAIEvent = S2SEvent | SessionReady


class OpenAIDecoder:
    """Server event → events. One per connection; remembers which calls it reported."""

    def __init__(self) -> None:
        self._calls: set[str] = set()

    def decode(self, text: str | bytes) -> list[OpenAIEvent]:
        try:
            event = json.loads(text)
        except ValueError as exc:
            raise OpenAIWireError(f"server event is not JSON: {exc}") from None
        if not isinstance(event, dict) or not isinstance(kind := event.get("type"), str):
            raise OpenAIWireError("server event has no type")
        item_id = event.get("item_id")
        match kind:
            case "session.updated":
                return [SessionReady()]
            case "response.output_audio.delta":
                return [AudioOut(base64.b64decode(event.get("delta", "")), item_id)]
            case "response.output_audio_transcript.delta":
                return [OutputTranscript(str(event.get("delta", "")), False, item_id)]
            case "response.output_audio_transcript.done":
                return [OutputTranscript(str(event.get("transcript", "")).strip(), True, item_id)]
            case "conversation.item.input_audio_transcription.delta":
                return [InputTranscript(str(event.get("delta", "")), final=False)]
            case "conversation.item.input_audio_transcription.completed":
                return [InputTranscript(str(event.get("transcript", "")).strip(), final=True)]
            case "input_audio_buffer.speech_started":
                return [SpeechStarted(), Interrupted()]
            case "input_audio_buffer.speech_stopped":
                return [SpeechStopped()]
            case "response.function_call_arguments.done":
                return self._call(event.get("call_id"), event.get("name"), event.get("arguments"))
            case "response.output_item.done":
                item = event.get("item") or {}
                if item.get("type") != "function_call":
                    return []
                return self._call(item.get("call_id"), item.get("name"), item.get("arguments"))
            case "response.done":
                return [TurnComplete()]
            case "error":
                return [self._error(event.get("error") or {})]
        return []

    def _call(self, call_id: Any, name: Any, arguments: Any) -> list[OpenAIEvent]:
        if not call_id or call_id in self._calls:
            return []
        self._calls.add(str(call_id))
        try:
            args = json.loads(arguments or "{}")
        except ValueError:
            args = {"_raw": arguments}
        if not isinstance(args, dict):
            args = {"_value": args}
        return [ToolCall(str(call_id), str(name or ""), args)]

    @staticmethod
    def _error(error: Mapping[str, Any]) -> OpenAIEvent:
        code = error.get("code")
        if code == "session_expired":
            return GoAway(0.0)
        message = str(error.get("message") or error.get("type") or "upstream error")
        return UpstreamError(message, retryable=code in RETRYABLE_CODES, code=code)
