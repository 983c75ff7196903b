"""Pure wire codec for Gemini Live (``BidiGenerateContent``), camelCase JSON as in Google's docs.

Client messages are built by the ``encode_*`` functions (each returns JSON text). Server
messages go through :class:`GeminiDecoder`, a small sans-I/O object (no sockets, no clock)
that turns one message into events of :mod:`parley.s2s.base` plus :class:`SetupComplete`.
It keeps the transcription pieces of the current turn so it can say when one is final:
the caller's words are final when the model starts answering (or the turn ends), the
model's words when the turn completes or is interrupted.
"""

from __future__ import annotations

import base64
import json
import re
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
    ResumptionHandle,
    S2SConfig,
    S2SEvent,
    ToolCall,
    ToolCallCancelled,
    TurnComplete,
    UpstreamError,
)
from parley.s2s.urls import websocket_base

DEFAULT_MODEL = "gemini-live-2.5-flash-preview"
WS_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
INPUT_MIME = "audio/pcm;rate=16000"


class GeminiWireError(ValueError):
    """A server message that is not valid BidiGenerateContent JSON."""


@dataclass(frozen=True, slots=True)
class SetupComplete:
    """The server accepted ``setup``; the session is ready."""


def ws_url(base_url: str, api_key: str) -> str:
    """``https://host`` → ``wss://host/ws/...BidiGenerateContent?key=...`` (``http`` → ``ws``)."""
    return f"{websocket_base(base_url)}{WS_PATH}?key={quote(api_key, safe='')}"


def _dumps(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def setup_message(config: S2SConfig, resumption_handle: str | None = None) -> dict[str, Any]:
    """The first message on a connection; ``resumption_handle`` resumes an earlier session."""
    model = config.model or DEFAULT_MODEL
    generation: dict[str, Any] = {"responseModalities": ["AUDIO"]}
    if config.voice:
        generation["speechConfig"] = {
            "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": config.voice}}
        }
    setup: dict[str, Any] = {
        "model": model if model.startswith("models/") else f"models/{model}",
        "generationConfig": generation,
    }
    if config.instructions:
        setup["systemInstruction"] = {"parts": [{"text": config.instructions}]}
    if config.tools:
        setup["tools"] = [
            {
                "functionDeclarations": [
                    {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
                    for t in config.tools
                ]
            }
        ]
    if config.input_transcription:
        setup["inputAudioTranscription"] = {}
    if config.output_transcription:
        setup["outputAudioTranscription"] = {}
    setup["sessionResumption"] = {"handle": resumption_handle} if resumption_handle else {}
    if config.compression:
        window: dict[str, Any] = {}
        if config.compression_target_tokens is not None:
            window["targetTokens"] = config.compression_target_tokens
        compression: dict[str, Any] = {"slidingWindow": window}
        if config.compression_trigger_tokens is not None:
            compression["triggerTokens"] = config.compression_trigger_tokens
        setup["contextWindowCompression"] = compression
    setup["realtimeInputConfig"] = {
        "automaticActivityDetection": {"disabled": not config.server_vad}
    }
    return {"setup": setup}


def encode_setup(config: S2SConfig, resumption_handle: str | None = None) -> str:
    return _dumps(setup_message(config, resumption_handle))


def encode_audio(pcm16k: bytes) -> str:
    data = base64.b64encode(pcm16k).decode("ascii")
    return _dumps({"realtimeInput": {"audio": {"mimeType": INPUT_MIME, "data": data}}})


def encode_history(turns: tuple[HistoryTurn, ...] | list[HistoryTurn]) -> str:
    """Seed a fresh session with earlier turns (no answer is asked for)."""
    contents = [
        {"role": "user" if t.role == "user" else "model", "parts": [{"text": t.text}]}
        for t in turns
    ]
    return _dumps({"clientContent": {"turns": contents, "turnComplete": False}})


def encode_text(text: str) -> str:
    """A typed user turn; the model answers it."""
    turn = {"role": "user", "parts": [{"text": text}]}
    return _dumps({"clientContent": {"turns": [turn], "turnComplete": True}})


def encode_tool_result(call_id: str, name: str, result: Mapping[str, Any]) -> str:
    response = {"id": call_id, "name": name, "response": dict(result)}
    return _dumps({"toolResponse": {"functionResponses": [response]}})


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_duration(value: Any) -> float:
    """Protobuf Duration JSON (``"10s"``, ``"1.5s"``) or ``{"seconds", "nanos"}`` → seconds."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m.group(1))
    if isinstance(value, dict):
        return float(value.get("seconds", 0)) + float(value.get("nanos", 0)) / 1e9
    raise GeminiWireError(f"not a duration: {value!r}")


GeminiEvent = S2SEvent | SetupComplete


class GeminiDecoder:
    """Server message → events. One per connection; holds the current turn's transcripts."""

    def __init__(self) -> None:
        self._heard: list[str] = []  # caller transcription pieces, not yet final
        self._said: list[str] = []  # model transcription pieces of the current turn

    def decode(self, text: str | bytes) -> list[GeminiEvent]:
        try:
            message = json.loads(text)
        except ValueError as exc:
            raise GeminiWireError(f"server message is not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise GeminiWireError("server message is not a JSON object")
        out: list[GeminiEvent] = []
        if "setupComplete" in message:
            out.append(SetupComplete())
        if isinstance(content := message.get("serverContent"), dict):
            self._content(content, out)
        if isinstance(call := message.get("toolCall"), dict):
            self._finish_input(out)
            for fc in call.get("functionCalls", []):
                args = fc.get("args") or {}
                out.append(ToolCall(str(fc.get("id", "")), str(fc["name"]), args))
        if isinstance(cancel := message.get("toolCallCancellation"), dict):
            out.append(ToolCallCancelled(tuple(str(i) for i in cancel.get("ids", []))))
        if isinstance(away := message.get("goAway"), dict):
            out.append(GoAway(parse_duration(away.get("timeLeft", "0s"))))
        if isinstance(update := message.get("sessionResumptionUpdate"), dict):
            handle = update.get("newHandle")
            if update.get("resumable", True) and handle:
                out.append(ResumptionHandle(str(handle)))
        if isinstance(error := message.get("error"), dict):
            out.append(UpstreamError(str(error.get("message", error)), retryable=False))
        return out

    def _content(self, content: dict[str, Any], out: list[GeminiEvent]) -> None:
        if isinstance(heard := content.get("inputTranscription"), dict) and heard.get("text"):
            self._heard.append(str(heard["text"]))
            out.append(InputTranscript(str(heard["text"]), final=False))
        turn = content.get("modelTurn")
        said = content.get("outputTranscription")
        if turn or said:
            self._finish_input(out)
        if isinstance(turn, dict):
            for part in turn.get("parts", []):
                blob = part.get("inlineData")
                if isinstance(blob, dict) and str(blob.get("mimeType", "")).startswith("audio/"):
                    out.append(AudioOut(base64.b64decode(blob.get("data", ""))))
        if isinstance(said, dict) and said.get("text"):
            self._said.append(str(said["text"]))
            out.append(OutputTranscript(str(said["text"]), final=False))
        if content.get("interrupted"):
            out.append(Interrupted())
            self._finish_output(out)
        if content.get("turnComplete"):
            self._finish_input(out)
            self._finish_output(out)
            out.append(TurnComplete())

    def _finish_input(self, out: list[GeminiEvent]) -> None:
        if self._heard:
            out.append(InputTranscript("".join(self._heard).strip(), final=True))
            self._heard.clear()

    def _finish_output(self, out: list[GeminiEvent]) -> None:
        if self._said:
            out.append(OutputTranscript("".join(self._said).strip(), final=True))
            self._said.clear()
